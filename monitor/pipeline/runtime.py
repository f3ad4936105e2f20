"""What one process needs to run stages: config, engine, sessions, identity, a stop signal,
and the stages' long-lived :class:`Resources`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import Clock
from monitor.config import Config
from monitor.embed import Embedder
from monitor.feeds.parse import ParserPool
from monitor.feeds.robots import RobotsCache
from monitor.store import db, queries
from monitor.store.vectors import VectorIndex

if TYPE_CHECKING:
    from monitor.pipeline.matching import TopicCache


@dataclass
class Resources:
    """What stages keep between runs, created lazily by the stage that owns each one (tests
    set them beforehand: a frozen clock, an already loaded embedder)."""

    clock: Clock = field(default_factory=Clock)
    embedder: Embedder | None = None  # pipeline/matching.get_embedder
    topics: TopicCache | None = None  # pipeline/matching.topic_models
    parser_pool: ParserPool | None = None  # pipeline/polling.parser_pool
    robots: RobotsCache | None = None  # pipeline/fulltext
    vector_indexes: dict[str, VectorIndex] = field(default_factory=dict)  # search, by model id

    def close(self) -> None:
        """Release what holds processes, threads or memory maps."""
        for resource in (self.embedder, self.parser_pool, *self.vector_indexes.values()):
            closer = getattr(resource, "close", None)
            if callable(closer):
                closer()
        self.embedder, self.parser_pool, self.topics = None, None, None
        self.vector_indexes.clear()


@dataclass
class Runtime:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    worker_id: str
    stop: threading.Event = field(default_factory=threading.Event)
    resources: Resources = field(default_factory=Resources)

    @property
    def clock(self) -> Clock:
        return self.resources.clock

    def close(self) -> None:
        self.resources.close()
        self.engine.dispose()


def open_runtime(config: Config, *, migrate: bool = True, sync: bool = True) -> Runtime:
    """Connect, migrate to the newest schema, and mirror config feeds and topics into the DB."""
    url = config.database_url
    if migrate:
        db.upgrade(url)
    engine = db.make_engine(url, echo=config.database.echo)
    runtime = Runtime(
        config=config,
        engine=engine,
        sessions=db.make_session_factory(engine),
        worker_id=queries.worker_id(),
    )
    if sync:
        with db.session_scope(runtime.sessions) as session:
            queries.sync_config(session, config)
    return runtime
