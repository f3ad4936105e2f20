"""Workers started together on one PostgreSQL database all mirror config.toml's feeds and
topics. The second must wait for the first and then find its rows, not insert the same feed
and die on ``uq_feeds_url`` (seen when the month replay started three workers at once)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import func, select

from monitor.config import load_config
from monitor.store import db, queries
from monitor.store.models import Feed, Topic


def _waiting_backends(url: str) -> int:
    """Backends of this database waiting for a lock someone else holds."""
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE NOT l.granted AND a.datname = current_database()"
        ).fetchone()
        return int(row[0]) if row else 0


def test_a_second_worker_waits_for_the_first_config_sync(
    pg_url: str, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = load_config(
        write_config(f"""
            [database]
            url = "{pg_url}"

            [[feeds]]
            url = "http://127.0.0.1:9/one.xml"

            [[feeds]]
            url = "http://127.0.0.1:9/two.xml"
        """)
    )
    db.upgrade(pg_url)
    first = db.make_session_factory(db.make_engine(pg_url, null_pool=True))()
    second = db.make_session_factory(db.make_engine(pg_url, null_pool=True))
    errors: list[BaseException] = []

    def second_worker() -> None:
        try:
            with db.session_scope(second) as session:
                queries.sync_config(session, config)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    queries.sync_config(first, config)
    first.flush()  # the first worker's rows are written, not yet committed
    worker = threading.Thread(target=second_worker)
    worker.start()
    deadline = time.monotonic() + 30
    while _waiting_backends(pg_url) == 0:  # the second worker is blocked on the first
        assert worker.is_alive(), errors
        assert time.monotonic() < deadline, "the second worker never waited"
    first.commit()
    first.close()
    worker.join(timeout=60)

    assert not worker.is_alive()
    assert errors == []
    with db.session_scope(second) as session:
        assert session.scalar(select(func.count()).select_from(Feed)) == 2
        assert session.scalar(select(func.count()).select_from(Topic)) == len(config.topics)
