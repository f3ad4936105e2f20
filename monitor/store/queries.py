"""Queries shared by commands and stages: config sync, feed listing, heartbeats.

Stage-specific queries live next to their stage's store helpers (``store/polling.py``,
``store/matching.py``, ``store/outbox.py``...), so each stage's SQL can be read in one place.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from monitor.config import Config, FeedConfig, TopicConfig
from monitor.errors import NotFoundError
from monitor.store.models import Feed, Topic, Worker


def _now() -> datetime:
    return datetime.now(UTC)


def sync_feeds(session: Session, feeds: Sequence[FeedConfig]) -> tuple[int, int]:
    """Insert config feeds that are new and refresh their settings; return (added, updated).

    Feeds added with ``monitor feeds add`` (``from_config`` false) are left alone, and config
    feeds are never deleted automatically: their history stays until ``feeds remove``.
    """
    existing = {f.url: f for f in session.scalars(select(Feed))}
    added = updated = 0
    for spec in feeds:
        row = existing.get(spec.url)
        if row is None:
            session.add(
                Feed(
                    url=spec.url,
                    name=spec.name,
                    interval_s=spec.interval,
                    tags=list(spec.tags),
                    language=spec.language,
                    full_text=spec.full_text,
                    from_config=True,
                    next_poll_at=_now(),
                )
            )
            added += 1
            continue
        changed = (row.name, row.interval_s, row.tags, row.language, row.full_text) != (
            spec.name,
            spec.interval,
            list(spec.tags),
            spec.language,
            spec.full_text,
        )
        if changed:
            row.name, row.interval_s = spec.name, spec.interval
            row.tags, row.language = list(spec.tags), spec.language
            row.full_text = spec.full_text
            updated += 1
    return added, updated


def topic_config_hash(topic: TopicConfig) -> str:
    data = topic.model_dump(mode="json")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def sync_topics(session: Session, topics: Sequence[TopicConfig]) -> dict[str, int]:
    """Make the topics table mirror config; return name -> topic id."""
    rows = {t.name: t for t in session.scalars(select(Topic))}
    for spec in topics:
        row = rows.get(spec.name)
        digest = topic_config_hash(spec)
        if row is None:
            row = Topic(name=spec.name, threshold=spec.threshold, config_hash=digest)
            session.add(row)
            rows[spec.name] = row
        elif row.config_hash != digest or not row.active:
            row.threshold, row.config_hash, row.active = spec.threshold, digest, True
            row.updated_at = _now()
    configured = {t.name for t in topics}
    for name, row in rows.items():
        if name not in configured and row.active:
            row.active = False
    session.flush()
    return {name: row.id for name, row in rows.items() if row.active}


def sync_config(session: Session, config: Config) -> None:
    sync_feeds(session, config.feeds)
    sync_topics(session, config.topics)


def list_feeds(session: Session) -> list[Feed]:
    return list(session.scalars(select(Feed).order_by(Feed.id)))


def find_feed(session: Session, key: str) -> Feed:
    """A feed by id, exact URL or name."""
    feed = None
    if key.isdigit():
        feed = session.get(Feed, int(key))
    if feed is None:
        feed = session.scalar(select(Feed).where((Feed.url == key) | (Feed.name == key)))
    if feed is None:
        raise NotFoundError(f"no feed with id, URL or name {key!r} (see `monitor feeds list`)")
    return feed


def add_feed(
    session: Session,
    url: str,
    *,
    name: str = "",
    interval_s: float | None = None,
    tags: Sequence[str] = (),
) -> Feed:
    existing = session.scalar(select(Feed).where(Feed.url == url))
    if existing is not None:
        return existing
    feed = Feed(url=url, name=name, interval_s=interval_s, tags=list(tags), next_poll_at=_now())
    session.add(feed)
    session.flush()
    return feed


def remove_feed(session: Session, key: str) -> Feed:
    feed = find_feed(session, key)
    session.execute(delete(Feed).where(Feed.id == feed.id))
    return feed


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def heartbeat(session: Session, wid: str) -> None:
    """Record that this worker's scheduler ticked; /healthz reads it."""
    row = session.get(Worker, wid)
    now = _now()
    if row is None:
        host, _, pid = wid.rpartition(":")
        session.add(
            Worker(id=wid, hostname=host, pid=int(pid or 0), started_at=now, last_tick_at=now)
        )
    else:
        row.last_tick_at = now


def forget_worker(session: Session, wid: str) -> None:
    session.execute(delete(Worker).where(Worker.id == wid))


def live_workers(session: Session, within: timedelta) -> list[Worker]:
    cutoff = _now() - within
    return list(session.scalars(select(Worker).where(Worker.last_tick_at >= cutoff)))


def make_all_feeds_due(session: Session) -> int:
    """Make every enabled feed due now (``monitor demo``; a manual "poll now")."""
    feeds = list(session.scalars(select(Feed).where(Feed.enabled.is_(True))))
    for feed in feeds:
        feed.next_poll_at = _now()
    return len(feeds)
