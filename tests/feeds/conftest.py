"""Fixtures for the polling tests: a loopback feed server, a runtime on a real database, and one
parser process pool shared by the whole session (starting one costs about a second)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from monitor.config import Config, DatabaseConfig, FeedConfig, PollingConfig
from monitor.feeds.parse import ParserPool
from monitor.pipeline.runtime import Runtime, open_runtime
from monitor.store import db
from monitor.store.models import Article, Feed
from tests.support.httpserver import LocalServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"
RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="session")
def shared_pool() -> Iterator[ParserPool]:
    pool = ParserPool(2, timeout_s=20.0)
    yield pool
    pool.close()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


MakeRuntime = Callable[..., Runtime]


@pytest.fixture
def make_runtime(sqlite_url: str, shared_pool: ParserPool) -> Iterator[MakeRuntime]:
    """Build a runtime for given feed URLs and [polling] settings, sharing the parser pool."""
    runtimes: list[Runtime] = []

    def make(
        urls: list[str], *, url: str = "", pool: ParserPool | None = None, **polling: Any
    ) -> Runtime:
        polling = {"connect_timeout": 2.0, "read_timeout": 2.0, "total_timeout": 5.0, **polling}
        config = Config(
            database=DatabaseConfig(url=url or sqlite_url),
            polling=PollingConfig(**polling),
            feeds=[FeedConfig(url=u) for u in urls],
        )
        runtime = open_runtime(config)
        runtime.resources.parser_pool = pool or shared_pool
        runtimes.append(runtime)
        return runtime

    yield make
    for runtime in runtimes:
        runtime.resources.parser_pool = None  # shared: closed by its own fixture
        runtime.close()


def feed_row(runtime: Runtime, url: str) -> Feed:
    with db.session_scope(runtime.sessions) as session:
        feed = session.scalar(select(Feed).where(Feed.url == url))
        assert feed is not None, url
        return feed


def feed_by_id(runtime: Runtime, feed_id: int) -> Feed:
    with db.session_scope(runtime.sessions) as session:
        feed = session.get(Feed, feed_id)
        assert feed is not None
        return feed


def articles(runtime: Runtime, feed_id: int | None = None) -> list[Article]:
    with db.session_scope(runtime.sessions) as session:
        query = select(Article).order_by(Article.id)
        if feed_id is not None:
            query = query.where(Article.feed_id == feed_id)
        return list(session.scalars(query))


def make_due(runtime: Runtime) -> None:
    """Pretend time passed: every feed is due again."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    with db.session_scope(runtime.sessions) as session:
        session.execute(update(Feed).values(next_poll_at=datetime.now(UTC)))
