"""Fixtures for the delivery tests: a runtime on a real database with a controllable clock,
rows created directly (no matching stage needed), a real SMTP server (aiosmtpd) and the real
loopback HTTP server as Slack/webhook receiver."""

from __future__ import annotations

import socket
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from monitor import clock as monitor_clock
from monitor.config import load_config
from monitor.pipeline.outbox import enqueue_alerts
from monitor.pipeline.runtime import Runtime, open_runtime
from monitor.store import db
from monitor.store.models import Article, Delivery, Embedding, Feed, Match, Topic

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC


class Clock:
    """A clock the test moves by hand: schedules are tested without sleeping."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current

    def set(self, when: datetime) -> None:
        self.current = when


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


BASE_CONFIG = """
[database]
url = "{db_url}"
lease = "{lease}"

[delivery]
retry_base = "10s"
retry_cap = "2m"
give_up_after = "1h"
story_similarity = {story_similarity}
story_window = "48h"
{delivery_extra}

{channels}

{topics}
"""

DEFAULT_TOPICS = """
[[topics]]
name = "t1"
descriptions = ["anything"]
channels = ["hook"]
"""


@dataclass
class Env:
    """One test's world: runtime, clock, and helpers that write rows the matcher would write."""

    runtime: Runtime
    clock: Clock
    feeds: dict[str, int] = field(default_factory=dict)
    counter: int = 0

    def feed(self, name: str) -> int:
        if name not in self.feeds:
            with db.session_scope(self.runtime.sessions) as session:
                row = Feed(url=f"http://127.0.0.1/{name.replace(' ', '-')}.xml", name=name)
                session.add(row)
                session.flush()
                self.feeds[name] = row.id
        return self.feeds[name]

    def match(
        self,
        title: str,
        *,
        topic: str = "t1",
        feed: str = "Feed A",
        link: str = "",
        canonical: str | None = None,
        vector: list[float] | None = None,
        passage: str = "the passage that matched",
        score: float = 0.8,
        summary: str = "summary",
        aliases: tuple[str, ...] = (),
        language: str = "",
    ) -> int:
        """Insert an article + match and call enqueue_alerts in one transaction (as matching)."""
        self.counter += 1
        feed_id = self.feed(feed)
        link = link or f"https://news.example/{self.counter}"
        with db.session_scope(self.runtime.sessions) as session:
            topic_id = session.scalar(select(Topic.id).where(Topic.name == topic))
            article = Article(
                feed_id=feed_id,
                entry_key=f"e{self.counter}",
                link=link,
                canonical_link=link if canonical is None else canonical,
                title=title,
                summary=summary,
                language=language,
                published_at=self.clock(),
            )
            session.add(article)
            session.flush()
            if vector is not None:
                raw = np.asarray(vector, dtype=np.float32)
                session.add(
                    Embedding(
                        article_id=article.id, model_id="test", dim=len(raw), vector=raw.tobytes()
                    )
                )
            match = Match(
                article_id=article.id,
                topic_id=topic_id,
                score=score,
                semantic_score=score,
                explanation={"passage": passage, "aliases": list(aliases)},
                published_at=self.clock(),
            )
            session.add(match)
            session.flush()
            enqueue_alerts(session, self.runtime, match, article, vector)
            return match.id

    def deliveries(self) -> list[Delivery]:
        with db.session_scope(self.runtime.sessions) as session:
            return list(session.scalars(select(Delivery).order_by(Delivery.id)))

    def matches(self) -> list[Match]:
        with db.session_scope(self.runtime.sessions) as session:
            return list(session.scalars(select(Match).order_by(Match.id)))


@pytest.fixture
def make_env(tmp_path: Path, sqlite_url: str) -> Iterator[Callable[..., Env]]:
    """Build an Env from channel and topic TOML; ``db_url`` defaults to a SQLite file."""
    made: list[Env] = []

    def build(
        channels: str,
        topics: str = DEFAULT_TOPICS,
        *,
        db_url: str | None = None,
        lease: str = "2m",
        delivery_extra: str = "",
        clock: Clock | None = None,
        story_similarity: float = 0.9,
    ) -> Env:
        text = BASE_CONFIG.format(
            db_url=db_url or sqlite_url,
            lease=lease,
            delivery_extra=textwrap.dedent(delivery_extra),
            story_similarity=story_similarity,
            channels=textwrap.dedent(channels),
            topics=textwrap.dedent(topics),
        )
        path = tmp_path / "config.toml"
        path.write_text(text, encoding="utf-8")
        runtime = open_runtime(load_config(path))
        env = Env(runtime, clock or Clock())
        runtime.resources.clock = monitor_clock.Clock(env.clock)
        made.append(env)
        return env

    yield build
    for env in made:
        env.runtime.close()


# -- SMTP -------------------------------------------------------------------------------------


class RecordingHandler:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.lock:
            self.messages.append(parsed)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class SmtpServer:
    """A real SMTP server on a fixed loopback port that a test can stop and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.handler = RecordingHandler()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()
