"""Queries shared by commands and stages: config sync, feed listing, heartbeats.

Stage-specific queries live next to their stage's store helpers (``store/polling.py``,
``store/matches.py``, ``store/outbox.py``...), so each stage's SQL can be read in one place.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from monitor.clock import utcnow
from monitor.config import Config, FeedConfig, TopicConfig
from monitor.errors import MonitorError, NotFoundError
from monitor.store.models import Article, Delivery, Feed, Match, Topic, Worker

REMOVED_REASON = "removed with `monitor feeds remove`"


def sync_feeds(session: Session, feeds: Sequence[FeedConfig]) -> tuple[int, int]:
    """Insert config feeds that are new and refresh their settings; return (added, updated).

    Rows are matched on the configured URL, which a redirect never changes. Feeds added with
    ``monitor feeds add`` (``from_config`` false) are left alone, and config feeds are never
    deleted automatically; a feed disabled by ``feeds remove`` and listed again is restored.
    """
    existing = {f.url: f for f in session.scalars(select(Feed))}
    added = updated = 0
    for spec in feeds:
        row = existing.get(spec.url)
        if row is not None and is_removed(row):  # listed again after `feeds remove`
            restore_feed(row)
            updated += 1
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
                    next_poll_at=utcnow(),
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
            row.updated_at = utcnow()
    configured = {t.name for t in topics}
    for name, row in rows.items():
        if name not in configured and row.active:
            row.active = False
    session.flush()
    return {name: row.id for name, row in rows.items() if row.active}


def rename_topic(session: Session, name: str, new_name: str) -> bool:
    """Give the stored topic ``name`` the name ``new_name``, so its matches, stories and
    judgements stay its own (config sync keys topics by name: it would otherwise make a new
    topic and leave the old one's history inactive). False when no topic of that name is
    stored (config sync will create it); MonitorError when ``new_name`` is stored already,
    even inactive: that history would be merged."""
    row = session.scalar(select(Topic).where(Topic.name == name))
    if row is None:
        return False
    taken = session.scalar(select(Topic.active).where(Topic.name == new_name))
    if taken is not None:
        state = "a topic" if taken else "a topic removed from the config, whose matches are kept"
        raise MonitorError(f'topic name "{new_name}" is taken by {state}')
    row.name, row.updated_at = new_name, utcnow()
    session.flush()
    return True


CONFIG_SYNC_LOCK = 0x6D6F6E69  # the advisory lock key workers take turns on to mirror config


def sync_config(session: Session, config: Config) -> None:
    """Mirror config feeds and topics into the database.

    Workers started together on one PostgreSQL database would each see a feed missing and
    insert it, and all but one would die on ``uq_feeds_url``: they take turns instead, on an
    advisory lock held until the transaction ends, so the next one reads what the first wrote.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CONFIG_SYNC_LOCK})
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


def feed_by_url(session: Session, url: str) -> Feed | None:
    """The feed known by ``url``, or polled there since a permanent redirect."""
    return session.scalar(
        select(Feed).where((Feed.url == url) | (Feed.redirect_url == url)).order_by(Feed.id)
    )


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
    feed = Feed(url=url, name=name, interval_s=interval_s, tags=list(tags), next_poll_at=utcnow())
    session.add(feed)
    session.flush()
    return feed


def is_removed(feed: Feed) -> bool:
    """Disabled by ``feeds remove`` (not by the server's 410): ``feeds add`` may restore it."""
    return not feed.enabled and feed.disabled_reason == REMOVED_REASON


def restore_feed(feed: Feed) -> None:
    """Poll a removed feed again, now; its kept history is still there."""
    feed.enabled, feed.disabled_reason, feed.next_poll_at = True, "", utcnow()


@dataclass(frozen=True, slots=True)
class FeedRemoval:
    """What ``feeds remove`` did, for its message."""

    id: int
    url: str
    purged: bool
    articles: int
    matches: int
    deliveries: int


def remove_feed(session: Session, key: str, *, purge: bool = False) -> FeedRemoval:
    """Stop polling a feed and keep its history (disabled), or delete it with everything
    derived from it (``purge``: articles, matches, deliveries go by ON DELETE CASCADE)."""
    feed = find_feed(session, key)
    articles, matches, deliveries = _history_counts(session, feed.id)
    if purge:
        session.execute(delete(Feed).where(Feed.id == feed.id))
    else:
        feed.enabled, feed.disabled_reason = False, REMOVED_REASON
        feed.lease_owner, feed.lease_until = None, None
    return FeedRemoval(feed.id, feed.url, purge, articles, matches, deliveries)


def _history_counts(session: Session, feed_id: int) -> tuple[int, int, int]:
    """How many articles, matches and deliveries hang on a feed (shown before deleting)."""
    article_ids = select(Article.id).where(Article.feed_id == feed_id)
    match_ids = select(Match.id).where(Match.article_id.in_(article_ids))
    deliveries = select(func.count()).select_from(Delivery)
    return (
        session.scalar(select(func.count()).where(Article.feed_id == feed_id)) or 0,
        session.scalar(select(func.count()).where(Match.article_id.in_(article_ids))) or 0,
        session.scalar(
            deliveries.where(Delivery.match_id.in_(match_ids) | (Delivery.feed_id == feed_id))
        )
        or 0,
    )


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def heartbeat(session: Session, wid: str, now: datetime | None = None) -> None:
    """Record that this worker's scheduler ticked; /healthz reads it."""
    row = session.get(Worker, wid)
    now = now or utcnow()
    if row is None:
        host, _, pid = wid.rpartition(":")
        session.add(
            Worker(id=wid, hostname=host, pid=int(pid or 0), started_at=now, last_tick_at=now)
        )
    else:
        row.last_tick_at = now


def forget_worker(session: Session, wid: str) -> None:
    session.execute(delete(Worker).where(Worker.id == wid))


@dataclass(frozen=True)
class Liveness:
    """Whether a daemon is alive: the one definition of "healthy", shared by `monitor health`
    and ``/healthz``: some worker's scheduler ticked within ``max_age_s``."""

    workers: tuple[str, ...]  # the workers that ticked within max_age_s
    last_tick: datetime | None  # the newest tick of any worker, ever
    age_s: float | None
    max_age_s: float

    @property
    def healthy(self) -> bool:
        return self.age_s is not None and self.age_s <= self.max_age_s


def liveness(session: Session, max_age_s: float, now: datetime | None = None) -> Liveness:
    now = now or utcnow()
    cutoff = now - timedelta(seconds=max_age_s)
    live = session.scalars(select(Worker.id).where(Worker.last_tick_at >= cutoff))
    last = session.scalar(select(func.max(Worker.last_tick_at)))
    age = (now - last).total_seconds() if last is not None else None
    return Liveness(tuple(live), last, age, max_age_s)


def make_all_feeds_due(session: Session) -> int:
    """Make every enabled feed due now (``monitor demo``; a manual "poll now")."""
    feeds = list(session.scalars(select(Feed).where(Feed.enabled.is_(True))))
    for feed in feeds:
        feed.next_poll_at = utcnow()
    return len(feeds)
