"""The outbox's SQL: claiming due deliveries under a lease, recording attempts, stories, budgets,
digests and health alerts. The delivery stages (``pipeline/delivery.py``, ``digests.py``,
``health_alerts.py``, ``outbox.py``) decide; this module creates and changes the rows, so no
stage constructs an ORM row. Payloads cross this edge as the dataclasses of
:mod:`monitor.domain` (:func:`payload_json` / :func:`payload_of`), never as loose dicts.

Claiming is a compare-and-set (``UPDATE ... WHERE id = ? AND <still claimable>``), so two
workers can never both own a row, on SQLite as on PostgreSQL; PostgreSQL additionally selects
with ``FOR UPDATE SKIP LOCKED`` so workers do not queue behind each other's row locks.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from monitor.domain import (
    AlertPayload,
    DeliveryKind,
    DeliveryStatus,
    DigestPayload,
    NoticePayload,
    Payload,
)
from monitor.store.models import Article, Delivery, DeliveryAttempt, Embedding, Feed, Match, Story

PENDING, SENDING, SENT, FAILED = (
    DeliveryStatus.PENDING,
    DeliveryStatus.SENDING,
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
)
QUEUED_DIGEST, DIGESTED = DeliveryStatus.QUEUED_DIGEST, DeliveryStatus.DIGESTED
STATUSES = tuple(DeliveryStatus)


# -- payloads -------------------------------------------------------------------------------


def payload_json(payload: Payload) -> dict[str, Any]:
    """The JSON stored in ``Delivery.payload``; a digest's part fields only when it is split."""
    data = asdict(payload)
    if isinstance(payload, DigestPayload):
        data["members"] = list(payload.members)
        if payload.part is None:
            for key in ("part", "parts", "total"):
                data.pop(key)
    return data


def payload_of(row: Delivery) -> Payload:
    """The row's payload as its kind's dataclass; rows written by older versions (or by hand)
    may lack keys, which read as the defaults."""
    data = row.payload or {}
    if row.kind == DeliveryKind.ALERT:
        return AlertPayload(
            article_id=_int(data.get("article_id")) or 0,
            topic=str(data.get("topic", "")),
            score=float(data.get("score") or 0.0),
            story_id=_int(data.get("story_id")),
            story_update=bool(data.get("story_update")),
        )
    if row.kind == DeliveryKind.DIGEST:
        return DigestPayload(
            topic=str(data.get("topic", "")),
            slot=str(data.get("slot", "")),
            members=tuple(m for m in data.get("members", []) if isinstance(m, int)),
            part=_int(data.get("part")),
            parts=_int(data.get("parts")),
            total=_int(data.get("total")),
        )
    state, since = data.get("state"), data.get("failing_since")
    return NoticePayload(
        notice=str(data.get("notice", "")),
        topic=str(data.get("topic", "")),
        state=str(state) if state is not None else None,
        failing_since=str(since) if since is not None else None,
    )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def topic_of(row: Delivery) -> str:
    """The topic a row alerts about ("feed health" for health notices)."""
    return payload_of(row).topic


# -- creating rows --------------------------------------------------------------------------


def add_alert(
    session: Session,
    *,
    match_id: int,
    channel: str,
    status: DeliveryStatus,
    payload: AlertPayload,
    now: datetime,
) -> Delivery:
    """Queue one match's alert on one channel (flushed: the next channel's budget sees it)."""
    row = Delivery(
        match_id=match_id,
        channel=channel,
        kind=DeliveryKind.ALERT,
        status=status,
        idempotency_key=f"match-{match_id}-{channel}",
        payload=payload_json(payload),
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def add_digest(
    session: Session, *, channel: str, key: str, payload: DigestPayload, now: datetime
) -> None:
    """Queue one digest row (or one part); flushed so parts get ids in order."""
    session.add(
        Delivery(
            channel=channel,
            kind=DeliveryKind.DIGEST,
            status=PENDING,
            idempotency_key=key,
            created_at=now,
            next_attempt_at=now,
            payload=payload_json(payload),
        )
    )
    session.flush()


def mark_digested(session: Session, delivery_ids: Sequence[int]) -> None:
    """The alert rows folded into a digest: they are sent as part of it, not alone."""
    if delivery_ids:
        session.execute(
            update(Delivery).where(Delivery.id.in_(list(delivery_ids))).values(status=DIGESTED)
        )


def add_health_notice(
    session: Session, *, channel: str, feed_id: int, key: str, payload: NoticePayload, now: datetime
) -> bool:
    """Queue a feed-health notice once per key; False when that key was queued already."""
    if key_exists(session, key):
        return False
    session.add(
        Delivery(
            channel=channel,
            feed_id=feed_id,
            kind=DeliveryKind.HEALTH,
            idempotency_key=key,
            payload=payload_json(payload),
            created_at=now,
            next_attempt_at=now,
        )
    )
    session.flush()
    return True


def set_health_alerted(session: Session, feed_id: int, when: datetime | None) -> None:
    """Record when a feed's failure was last reported (None once it recovered)."""
    session.execute(update(Feed).where(Feed.id == feed_id).values(health_alerted_at=when))


def requeue_failed(session: Session, delivery_id: int, now: datetime) -> Delivery | None:
    """Queue a failed row again, now; the row (whatever its state) or None when absent."""
    row = session.get(Delivery, delivery_id)
    if row is not None and row.status == FAILED:
        row.status, row.next_attempt_at, row.created_at = PENDING, now, now
    return row


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


def join_story(session: Session, match: Match, story_id: int, now: datetime) -> bool:
    """Add the match to an existing story; False when the story is gone."""
    story = session.get(Story, story_id)
    if story is None:
        return False
    match.story_id = story.id
    story.article_count += 1
    story.last_seen_at = now
    session.flush()
    return True


def start_story(session: Session, match: Match, article: Article, now: datetime) -> None:
    """Start a story with this match's article as its first."""
    story = Story(
        topic_id=match.topic_id,
        first_article_id=article.id,
        title=article.title,
        created_at=now,
        last_seen_at=now,
    )
    session.add(story)
    session.flush()
    match.story_id = story.id
    session.flush()


def mark_not_alerted(session: Session, match: Match) -> None:
    """The match joined a story that already alerted: it sends nothing of its own."""
    match.alerted = False
    session.flush()


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
        select(Feed.label)
        .join(Article, Article.feed_id == Feed.id)
        .join(Match, Match.article_id == Article.id)
        .where(Match.story_id == story_id, Match.id != exclude_match)
        .order_by(Match.id)
    )
    names: list[str] = []
    for (label,) in rows:
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
                Delivery.kind == DeliveryKind.ALERT,
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
        .where(Delivery.kind == DeliveryKind.HEALTH, Delivery.feed_id.is_not(None))
        .order_by(Delivery.id)
    )
    for row in rows:
        assert row.feed_id is not None
        latest[row.feed_id] = row
    return latest


# -- listing --------------------------------------------------------------------------------


def list_deliveries(
    session: Session,
    *,
    status: DeliveryStatus | None = None,
    channel: str | None = None,
    limit: int = 100,
) -> list[Delivery]:
    query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if status:
        query = query.where(Delivery.status == status)
    if channel:
        query = query.where(Delivery.channel == channel)
    return list(session.scalars(query))
