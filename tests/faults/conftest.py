"""Fixtures of the fault suite: a feed server, an alert receiver, daemons that are always
stopped at the end of a test, and a way to put alerts in the outbox without the matcher."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.pipeline.outbox import enqueue_alerts
from monitor.pipeline.runtime import open_runtime
from monitor.store import db
from monitor.store.models import Article, Feed, Match, Topic
from tests.support.daemonproc import DaemonProc
from tests.support.httpserver import LocalServer

StartDaemon = Callable[[Path], DaemonProc]


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[StartDaemon]:
    """Start ``monitor run`` on a config; every daemon started is killed after the test."""
    started: list[DaemonProc] = []

    def start(config: Path) -> DaemonProc:
        daemon = DaemonProc(config, tmp_path / f"daemon-{len(started)}.log").start()
        started.append(daemon)
        return daemon.wait_started()

    yield start
    for daemon in started:
        daemon.kill9()


def seed_outbox(config_path: Path, links: list[str]) -> None:
    """Store one article and one match per link and hand them to the outbox, as matching would.

    Lets delivery faults be tested on their own: the alerts to deliver are known exactly.
    """
    config = load_config(config_path)
    runtime = open_runtime(config)
    try:
        with db.session_scope(runtime.sessions) as session:
            feed = Feed(
                url="http://seeded.example/feed.xml", next_poll_at=datetime(2999, 1, 1, tzinfo=UTC)
            )
            session.add(feed)
            session.flush()
            topic = session.query(Topic).filter_by(name=config.topics[0].name).one()
            for n, link in enumerate(links):
                now = datetime.now(UTC)
                article = Article(
                    feed_id=feed.id,
                    entry_key=link,
                    link=link,
                    canonical_link=link,
                    title=f"Seeded alert {n}",
                    published_at=now,
                    matched_at=now,
                )
                session.add(article)
                session.flush()
                match = Match(article_id=article.id, topic_id=topic.id, score=0.9, published_at=now)
                session.add(match)
                session.flush()
                enqueue_alerts(session, runtime, match, article, None)
    finally:
        runtime.close()
