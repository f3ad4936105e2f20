"""What one process needs to run stages: config, engine, sessions, identity, a stop signal."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Config
from monitor.store import db, queries


@dataclass
class Runtime:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    worker_id: str
    stop: threading.Event = field(default_factory=threading.Event)
    # stage-owned singletons (the embedding model, the parser pool...) live here, created lazily
    resources: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for resource in self.resources.values():
            closer = getattr(resource, "close", None)
            if callable(closer):
                closer()
        self.resources.clear()
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
