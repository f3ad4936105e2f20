"""The outbox's SQL: claiming due deliveries under a lease, recording attempts, stories, budgets,
digests and health alerts. The delivery stage (``pipeline/delivery.py``) decides; this runs it.

Claiming is a compare-and-set (``UPDATE ... WHERE id = ? AND <still claimable>``), so two
workers can never both own a row, on SQLite as on PostgreSQL; PostgreSQL additionally selects
with ``FOR UPDATE SKIP LOCKED`` so workers do not queue behind each other's row locks.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from monitor.store.models import Article, Delivery, DeliveryAttempt, Embedding, Feed, Match, Story

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
QUEUED_DIGEST, DIGESTED = "queued_digest", "digested"
STATUSES = (PENDING, SENDING, SENT, FAILED, QUEUED_DIGEST, DIGESTED)


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Due and not leased, or left ``sending`` by a worker whose lease ran out."""
    free = or_(Delivery.lease_until.is_(None), Delivery.lease_until < now)
    return or_(
        and_(Delivery.status == PENDING, Delivery.next_attempt_at <= now, free),
        and_(Delivery.status == SENDING, Delivery.lease_until < now),
    )


def retrying_channels(session: Session, now: datetime) -> set[str]:
    """Channels whose oldest unsent alert waits for a retry: later alerts wait behind it."""
    rows = session.scalars(
        select(Delivery.channel)
        .distinct()
        .where(Delivery.status == PENDING, Delivery.attempts > 0, Delivery.next_attempt_at > now)
    )
    return set(rows)


def claim_due(
    session: Session,
    *,
    worker: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    skip_channels: Collection[str] = (),
) -> list[int]:
    """Lease up to ``limit`` due rows (oldest first) to ``worker``; the caller commits.

    Claimed rows keep their status: :func:`begin_send` marks each one ``sending`` just before
    its network call, so after a crash only the row really in flight is ``sending``. Such a
    row, once its lease has expired, is taken again (and the lost attempt recorded), to be
    resent with the same idempotency key.
    """
    query = select(Delivery.id, Delivery.status, Delivery.lease_owner).where(_claimable(now))
    if skip_channels:
        query = query.where(Delivery.channel.not_in(list(skip_channels)))
    query = query.order_by(Delivery.id).limit(limit).with_for_update(skip_locked=True)
    claimed = []
    for row_id, status, owner in session.execute(query).all():
        result = session.execute(
            update(Delivery)
            .where(Delivery.id == row_id, _claimable(now))
            .values(lease_owner=worker, lease_until=lease_until)
        )
        if _rowcount(result) != 1:
            continue
        if status == SENDING:
            session.add(
                DeliveryAttempt(
                    delivery_id=row_id,
                    attempted_at=now,
                    ok=False,
                    error=f"interrupted: worker {owner} stopped during the send (lease expired); "
                    "resending with the same idempotency key",
                )
            )
            session.execute(
                update(Delivery).where(Delivery.id == row_id).values(attempts=Delivery.attempts + 1)
            )
        claimed.append(row_id)
    return claimed


def _rowcount(result: object) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0


def begin_send(session: Session, delivery_id: int, *, worker: str, lease_until: datetime) -> bool:
    """Mark our leased row ``sending`` with a fresh lease, to be committed before the network
    call; False when another worker has taken the row meanwhile."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status.in_([PENDING, SENDING]),
            Delivery.lease_owner == worker,
        )
        .values(status=SENDING, lease_until=lease_until)
    )
    return _rowcount(result) == 1


def release(session: Session, delivery_ids: Sequence[int], *, worker: str) -> None:
    """Hand claimed rows back untouched (stop requested, channel blocked)."""
    if delivery_ids:
        session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(list(delivery_ids)),
                Delivery.lease_owner == worker,
                Delivery.status.in_([PENDING, SENDING]),
            )
            .values(status=PENDING, lease_owner=None, lease_until=None)
        )


def record_sent(session: Session, delivery_id: int, *, now: datetime, duration_s: float) -> None:
    session.add(
        DeliveryAttempt(delivery_id=delivery_id, attempted_at=now, ok=True, duration_s=duration_s)
    )
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(
            status=SENT,
            sent_at=now,
            last_error="",
            lease_owner=None,
            lease_until=None,
            attempts=Delivery.attempts + 1,
        )
    )


def record_failure(
    session: Session,
    delivery_id: int,
    *,
    now: datetime,
    error: str,
    duration_s: float,
    retry_at: datetime | None,
) -> None:
    """Record a failed try: back to pending at ``retry_at``, or failed for good when None."""
    session.add(
        DeliveryAttempt(
            delivery_id=delivery_id, attempted_at=now, ok=False, error=error, duration_s=duration_s
        )
    )
    values: dict[str, object] = {
        "last_error": error,
        "lease_owner": None,
        "lease_until": None,
        "attempts": Delivery.attempts + 1,
    }
    if retry_at is None:
        values["status"] = FAILED
    else:
        values.update(status=PENDING, next_attempt_at=retry_at)
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


# -- stories --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoryMember:
    match_id: int
    story_id: int
    article_id: int
    canonical_link: str
    language: str = ""


def story_members(
    session: Session, topic_id: int, since: datetime, exclude_match: int
) -> list[StoryMember]:
    """Matches of ``topic_id`` in stories still open: started since ``since``.

    The window runs from a story's first article, not its latest, so a week of continuous
    coverage cannot chain into one endless story (each new development alerts again)."""
    rows = session.execute(
        select(Match.id, Match.story_id, Article.id, Article.canonical_link, Article.language)
        .join(Article, Article.id == Match.article_id)
        .join(Story, Story.id == Match.story_id)
        .where(Match.topic_id == topic_id, Story.created_at >= since, Match.id != exclude_match)
        .order_by(Match.id)
    )
    return [
        StoryMember(m, s, a, link or "", language or "")
        for m, s, a, link, language in rows
        if s is not None
    ]


def embeddings_of(session: Session, article_ids: Collection[int]) -> dict[int, tuple[int, bytes]]:
    """article id -> (dim, raw vector bytes); one per article (any model with the same dim)."""
    out: dict[int, tuple[int, bytes]] = {}
    if not article_ids:
        return out
    for article_id, dim, vector in session.execute(
        select(Embedding.article_id, Embedding.dim, Embedding.vector).where(
            Embedding.article_id.in_(list(article_ids))
        )
    ):
        out.setdefault(article_id, (dim, vector))
    return out


def story_sources(session: Session, story_id: int, exclude_match: int) -> list[str]:
    """Display names of the feeds that reported a story, oldest first (for "also reported by")."""
    rows = session.execute(
        select(Feed.name, Feed.title, Feed.url)
        .join(Article, Article.feed_id == Feed.id)
        .join(Match, Match.article_id == Article.id)
        .where(Match.story_id == story_id, Match.id != exclude_match)
        .order_by(Match.id)
    )
    names: list[str] = []
    for name, title, url in rows:
        label = name or title or url
        if label not in names:
            names.append(label)
    return names


# -- budgets and digests --------------------------------------------------------------------


def immediate_count(session: Session, *, topic_id: int, channel: str, since: datetime) -> int:
    """Immediate alerts of a topic on a channel created since ``since`` (for the hourly budget)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Delivery)
            .join(Match, Match.id == Delivery.match_id)
            .where(
                Match.topic_id == topic_id,
                Delivery.channel == channel,
                Delivery.kind == "match",
                Delivery.status.in_([PENDING, SENDING, SENT, FAILED]),
                Delivery.created_at >= since,
            )
        )
        or 0
    )


def digest_channels(session: Session) -> list[str]:
    return list(
        session.scalars(select(Delivery.channel).distinct().where(Delivery.status == QUEUED_DIGEST))
    )


def queued_for_digest(session: Session, channel: str, before: datetime) -> list[Delivery]:
    return list(
        session.scalars(
            select(Delivery)
            .where(
                Delivery.channel == channel,
                Delivery.status == QUEUED_DIGEST,
                Delivery.created_at < before,
            )
            .order_by(Delivery.id)
        )
    )


def key_exists(session: Session, key: str) -> bool:
    return session.scalar(select(Delivery.id).where(Delivery.idempotency_key == key)) is not None


# -- health ---------------------------------------------------------------------------------


def feeds_failing_since(session: Session, cutoff: datetime) -> list[Feed]:
    """Feeds failing since before ``cutoff`` (reported or not: the caller checks its notices)."""
    return list(
        session.scalars(
            select(Feed).where(Feed.failing_since.is_not(None), Feed.failing_since <= cutoff)
        )
    )


def latest_health_notices(session: Session) -> dict[int, Delivery]:
    """feed id -> its newest health notice. The notices themselves are the memory of what was
    reported, so recovery is noticed whatever else resets ``Feed.health_alerted_at``."""
    latest: dict[int, Delivery] = {}
    rows = session.scalars(
        select(Delivery)
        .where(Delivery.kind == "health", Delivery.feed_id.is_not(None))
        .order_by(Delivery.id)
    )
    for row in rows:
        assert row.feed_id is not None
        latest[row.feed_id] = row
    return latest


# -- listing --------------------------------------------------------------------------------


def list_deliveries(
    session: Session, *, status: str | None = None, channel: str | None = None, limit: int = 100
) -> list[Delivery]:
    query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if status:
        query = query.where(Delivery.status == status)
    if channel:
        query = query.where(Delivery.channel == channel)
    return list(session.scalars(query))
