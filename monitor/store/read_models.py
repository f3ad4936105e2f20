"""Read-side queries for the CLI, the HTTP API and the web page.

Everything here returns plain dicts (JSON-ready apart from datetimes) so the three front ends
format the same data the same way. ``monitor matches`` and ``GET /api/matches`` share
:func:`list_matches`; ``monitor show`` and ``GET /api/articles/{id}`` share
:func:`article_detail`. Semantic search lives in :mod:`monitor.store.vectors`.

Pagination is keyset ("cursor") pagination on ``(published_at, id)`` descending: the cursor is
an opaque string, stable while new matches arrive, and every page is one index range scan on
``ix_matches_topic_id_published_at`` / ``ix_matches_published_at`` (an OFFSET would rescan).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from monitor.config import parse_duration
from monitor.domain import DeliveryStatus
from monitor.errors import NotFoundError
from monitor.redact import redact_text, redact_url
from monitor.store import matches
from monitor.store.models import (
    Article,
    ArticleBody,
    Delivery,
    DeliveryAttempt,
    Embedding,
    Feed,
    Feedback,
    Match,
    Story,
    Topic,
    Worker,
)

MAX_LIMIT = 500


@dataclass(frozen=True)
class MatchFilter:
    """The filters ``monitor matches`` and ``GET /api/matches`` accept."""

    topic: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_score: float | None = None
    feed: str | None = None
    tag: str | None = None  # only feeds carrying this tag (``[[feeds]] tags``)
    lang: str | None = None
    limit: int = 50
    cursor: str | None = None
    alerted: bool | None = None  # True: alerted; False: history or grouped into a story
    judged: bool | None = None  # True: judged either way; False: not judged yet
    sort: str = "time"  # "time" (newest first) or "score" (highest first)


def parse_when(value: str | None, *, now: datetime | None = None) -> datetime | None:
    """``"7d"`` / ``"36h"`` (ago), ``"2026-11-20"`` or an ISO timestamp -> aware UTC datetime."""
    if value is None or value == "":
        return None
    now = now or datetime.now(UTC)
    try:
        return now - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f'expected a duration like "7d" or a date like "2026-11-20", got "{value}"'
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def encode_cursor(published_at: datetime, match_id: int) -> str:
    raw = json.dumps([published_at.isoformat(), match_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, match_id = json.loads(raw)
        return datetime.fromisoformat(stamp), int(match_id)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc


SORTS = ("time", "score")


def encode_score_cursor(score: float, match_id: int) -> str:
    """The cursor of a page sorted by score: the exact stored float, so no row repeats or is
    skipped at a page boundary (``repr`` round-trips a float)."""
    raw = json.dumps(["s", repr(float(score)), match_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_score_cursor(cursor: str) -> tuple[float, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, score, match_id = json.loads(raw)
        if kind != "s":
            raise ValueError(kind)
        return float(score), int(match_id)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r} (for sort=score)") from exc


def _resolve_topic_id(session: Session, name: str) -> int:
    topic_id = session.scalar(select(Topic.id).where(Topic.name == name))
    if topic_id is None and name.isdigit():
        topic_id = session.scalar(select(Topic.id).where(Topic.id == int(name)))
    if topic_id is None:
        names = ", ".join(session.scalars(select(Topic.name).order_by(Topic.name))) or "none"
        raise NotFoundError(f"no topic {name!r} (known: {names})")
    return topic_id


def _resolve_feed_id(session: Session, key: str) -> int:
    clause = or_(Feed.url == key, Feed.name == key)
    if key.isdigit():
        clause = or_(clause, Feed.id == int(key))
    feed_id = session.scalar(select(Feed.id).where(clause).limit(1))
    if feed_id is None:
        raise NotFoundError(f"no feed with id, URL or name {key!r} (see `monitor feeds list`)")
    return feed_id


def list_matches(session: Session, flt: MatchFilter) -> tuple[list[dict[str, Any]], str | None]:
    """One page of matches, newest first, and the cursor of the next page (None at the end).

    Plain columns, not ORM entities: no identity map or lazy state for a read-only listing
    (half the time of the entity version on a 1M-article database).
    """
    limit = max(1, min(flt.limit, MAX_LIMIT))
    stmt = match_select(Match.semantic_score, Article.language)
    if flt.topic:
        stmt = stmt.where(Match.topic_id == _resolve_topic_id(session, flt.topic))
    if flt.feed:
        stmt = stmt.where(Article.feed_id == _resolve_feed_id(session, flt.feed))
    if flt.tag:
        stmt = stmt.where(Article.feed_id.in_(feed_ids_tagged(session, flt.tag)))
    if flt.lang:
        stmt = stmt.where(Article.language == flt.lang.lower())
    if flt.since:
        stmt = stmt.where(Match.published_at >= flt.since)
    if flt.until:
        stmt = stmt.where(Match.published_at < flt.until)
    if flt.min_score is not None:
        stmt = stmt.where(Match.score >= flt.min_score)
    if flt.alerted is not None:
        stmt = stmt.where(Match.alerted.is_(flt.alerted))
    if flt.judged is not None:
        stmt = stmt.where(Feedback.id.is_not(None) if flt.judged else Feedback.id.is_(None))
    if flt.sort not in SORTS:
        raise ValueError(f'sort: expected one of {", ".join(SORTS)}, got "{flt.sort}"')
    by_score = flt.sort == "score"
    key = Match.score if by_score else Match.published_at
    if flt.cursor:
        at, match_id = decode_score_cursor(flt.cursor) if by_score else decode_cursor(flt.cursor)
        stmt = stmt.where(or_(key < at, and_(key == at, Match.id < match_id)))
    stmt = stmt.order_by(key.desc(), Match.id.desc()).limit(limit + 1)
    rows = session.execute(stmt).mappings().all()
    items = [_match_row(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = (
            encode_score_cursor(last["score"], last["match_id"])
            if by_score
            else encode_cursor(last["published_at"], last["match_id"])
        )
    return items, next_cursor


def feed_ids_tagged(session: Session, tag: str) -> list[int]:
    """Ids of the feeds whose tags include ``tag`` (case-insensitive).

    Tags are a JSON list per feed; the feeds table is small (hundreds of rows), so matching
    in Python keeps one query for SQLite and PostgreSQL alike.
    """
    wanted = tag.strip().casefold()
    rows = session.execute(select(Feed.id, Feed.tags)).all()
    return [fid for fid, tags in rows if wanted in {str(t).casefold() for t in tags or ()}]


_MATCH_COLUMNS = (
    Match.id.label("match_id"),
    Match.article_id,
    Match.story_id,
    Match.score,
    Match.explanation,
    Match.published_at,
    Match.alerted,
    Article.title,
    Article.link,
    Topic.name.label("topic"),
    Feed.label.label("source"),
    Feedback.relevant,
)


def match_select(*extra: Any) -> Any:
    """Matches with their article, topic, source and judgement (plus ``extra`` columns): the
    one join every match listing (CLI, API, web page, Atom feed, judgement page) starts from."""
    return (
        select(*_MATCH_COLUMNS, *extra)
        .join(Article, Article.id == Match.article_id)
        .join(Topic, Topic.id == Match.topic_id)
        .join(Feed, Feed.id == Article.feed_id)
        .outerjoin(
            Feedback,
            and_(Feedback.article_id == Match.article_id, Feedback.topic_id == Match.topic_id),
        )
    )


def _match_row(row: Any) -> dict[str, Any]:
    explanation = row["explanation"] if isinstance(row["explanation"], dict) else {}
    return {
        "match_id": row["match_id"],
        "article_id": row["article_id"],
        "title": row["title"],
        "source": row["source"],
        "published": row["published_at"],
        "topic": row["topic"],
        "score": round(float(row["score"]), 4),
        "semantic_score": round(float(row["semantic_score"] or 0.0), 4),
        "link": row["link"],
        "language": row["language"],
        "passage": explanation_passage(explanation),
        "story_id": row["story_id"],
        "alerted": row["alerted"],
        "feedback": row["relevant"],
    }


def explanation_passage(explanation: dict[str, Any] | None) -> str:
    """The seed passage (or text) that best explains a match, whatever shape matching stored."""
    if not isinstance(explanation, dict):
        return ""
    for key in ("passage", "best_passage", "exemplar", "text"):
        value = explanation.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict):
            text = value.get("text") or value.get("passage")
            if isinstance(text, str):
                return text
    return ""


def explanation_aliases(explanation: dict[str, Any] | None) -> list[str]:
    """Aliases that satisfied the topic's require groups, flattened, if matching recorded them."""
    if not isinstance(explanation, dict):
        return []
    value = explanation.get("aliases")
    out: list[str] = []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            if isinstance(item, list):
                out.extend(str(x) for x in item)
            elif item is not None:
                out.append(str(item))
    return out


def resolve_show_key(session: Session, key: str) -> int:
    """``a123`` / ``123`` -> article 123; ``m45`` -> the article of match 45."""
    key = key.strip().lower()
    if key.startswith("m") and key[1:].isdigit():
        article_id = session.scalar(select(Match.article_id).where(Match.id == int(key[1:])))
        if article_id is None:
            raise NotFoundError(f"no match {key[1:]}")
        return article_id
    if key.startswith("a") and key[1:].isdigit():
        key = key[1:]
    if not key.isdigit():
        raise NotFoundError(f"{key!r} is not an article id (a123 or 123) or a match id (m45)")
    return int(key)


def article_detail(session: Session, article_id: int) -> dict[str, Any]:
    """The article, its matches with explanations, their stories and deliveries, feedback."""
    article = session.get(Article, article_id)
    if article is None:
        raise NotFoundError(f"no article {article_id}")
    feed = session.get(Feed, article.feed_id)
    matches = session.execute(
        select(Match, Topic.name)
        .join(Topic, Topic.id == Match.topic_id)
        .where(Match.article_id == article_id)
        .order_by(Match.score.desc())
    ).all()
    match_ids = [m.id for m, _ in matches]
    deliveries = _deliveries_by_match(session, match_ids)
    feedback = {
        f.topic_id: f.relevant
        for f in session.scalars(select(Feedback).where(Feedback.article_id == article_id))
    }
    embedded = session.scalars(
        select(Embedding.model_id).where(Embedding.article_id == article_id)
    ).all()
    return {
        "article_id": article.id,
        "title": article.title,
        "link": article.link,
        "summary": article.summary,
        "page": _page(session, article.id),
        "author": article.author,
        "language": article.language,
        "published": article.published_at,
        "fetched": article.fetched_at,
        "is_history": article.is_history,
        "feed": {"id": feed.id, "name": feed.name or feed.title, "url": feed.url} if feed else None,
        "embedded_with": list(embedded),
        "matches": [
            _match_detail(session, m, topic, deliveries.get(m.id, []), feedback.get(m.topic_id))
            for m, topic in matches
        ],
    }


def _page(session: Session, article_id: int) -> dict[str, Any] | None:
    """The article's fetched page (feeds with full_text): status, why not, the body lead."""
    row = session.get(ArticleBody, article_id)
    if row is None:
        return None
    return {"status": row.status, "reason": row.reason, "lead": row.lead, "url": row.url}


def _match_detail(
    session: Session,
    match: Match,
    topic: str,
    deliveries: list[dict[str, Any]],
    relevant: bool | None,
) -> dict[str, Any]:
    story = session.get(Story, match.story_id) if match.story_id else None
    explanation = match.explanation if isinstance(match.explanation, dict) else {}
    return {
        "match_id": match.id,
        "topic": topic,
        "score": round(float(match.score), 4),
        "semantic_score": round(float(match.semantic_score or 0.0), 4),
        "alerted": match.alerted,
        "created": match.created_at,
        "passage": explanation_passage(explanation),
        "aliases": explanation_aliases(explanation),
        "explanation": explanation,
        "story": (
            {
                "id": story.id,
                "title": story.title,
                "article_count": story.article_count,
                "first_article_id": story.first_article_id,
                "last_seen": story.last_seen_at,
            }
            if story
            else None
        ),
        "deliveries": deliveries,
        "feedback": relevant,
    }


def _deliveries_by_match(session: Session, match_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    if not match_ids:
        return out
    rows = session.scalars(
        select(Delivery).where(Delivery.match_id.in_(match_ids)).order_by(Delivery.id)
    )
    for d in rows:
        out.setdefault(d.match_id or 0, []).append(
            {
                "id": d.id,
                "channel": d.channel,
                "kind": d.kind,
                "status": d.status,
                "attempts": d.attempts,
                # rows written before redaction existed may still quote a webhook URL
                "last_error": d.last_error and redact_text(d.last_error),
                "sent": d.sent_at,
            }
        )
    return out


def record_feedback(session: Session, match_id: int, relevant: bool) -> dict[str, Any]:
    """Store (or change) a user's judgement of a match; one row per (article, topic)."""
    row = matches.record_feedback(session, match_id, relevant)
    return {
        "match_id": row.match_id,
        "article_id": row.article_id,
        "topic_id": row.topic_id,
        "relevant": row.relevant,
    }


def list_feed_health(session: Session) -> list[dict[str, Any]]:
    """Every feed with its state, last error and article count."""
    counts = dict(
        session.execute(select(Article.feed_id, func.count()).group_by(Article.feed_id)).all()
    )
    return [
        {
            "id": f.id,
            "name": redact_text(f.label),
            "url": redact_url(f.url),
            "state": f.health,
            "consecutive_errors": f.consecutive_errors,
            "last_error": redact_text(f.last_error) if f.last_error else None,
            "last_status": f.last_status,
            "last_success": f.last_success_at,
            "next_poll": f.next_poll_at if f.enabled else None,
            "articles": int(counts.get(f.id, 0)),
        }
        for f in session.scalars(select(Feed).order_by(Feed.id))
    ]


def list_topics(session: Session, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """Topics with their threshold, match count (since ``since``) and newest match time."""
    stmt = select(Match.topic_id, func.count(), func.max(Match.published_at)).group_by(
        Match.topic_id
    )
    if since:
        stmt = stmt.where(Match.published_at >= since)
    stats = {tid: (n, last) for tid, n, last in session.execute(stmt).all()}
    out = []
    for t in session.scalars(select(Topic).order_by(Topic.name)):
        n, last = stats.get(t.id, (0, None))
        out.append(
            {
                "id": t.id,
                "name": t.name,
                "threshold": t.threshold,
                "active": t.active,
                "matches": int(n),
                "last_match": last,
            }
        )
    return out


def last_heartbeat(session: Session) -> datetime | None:
    """The newest scheduler tick of any worker (None when no daemon ever ran)."""
    return session.scalar(select(func.max(Worker.last_tick_at)))


def articles_by_id(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Article rows (with their feed's name) for search hits."""
    if not ids:
        return {}
    rows = session.execute(
        select(Article, Feed.label)
        .join(Feed, Feed.id == Article.feed_id)
        .where(Article.id.in_(ids))
    ).all()
    return {
        a.id: {
            "article_id": a.id,
            "title": a.title,
            "source": label,
            "published": a.published_at,
            "language": a.language,
            "link": a.link,
        }
        for a, label in rows
    }


def metrics_snapshot(session: Session, model_id: str) -> dict[str, Any]:
    """Counts for /metrics: feeds by state, articles, embedding backlog, matches, deliveries."""
    feeds: dict[str, int] = {}
    for f in session.scalars(select(Feed)):
        state = f.health
        feeds[state] = feeds.get(state, 0) + 1
    articles = session.scalar(select(func.count()).select_from(Article)) or 0
    embedded = (
        session.scalar(
            select(func.count()).select_from(Embedding).where(Embedding.model_id == model_id)
        )
        or 0
    )
    matches = dict(
        session.execute(
            select(Topic.name, func.count())
            .join(Match, Match.topic_id == Topic.id)
            .group_by(Topic.name)
        ).all()
    )
    deliveries = dict(
        session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
    )
    attempts = session.execute(
        select(func.count(), func.coalesce(func.sum(DeliveryAttempt.duration_s), 0.0))
    ).one()
    return {
        "feeds": feeds,
        "articles": int(articles),
        "backlog": max(0, int(articles - embedded)),
        "matches": {k: int(v) for k, v in matches.items()},
        "deliveries": {k: int(v) for k, v in deliveries.items()},
        "attempts": (int(attempts[0]), float(attempts[1])),
    }


def has_vectors(session: Session, model_id: str) -> bool:
    """Whether any article has a vector from ``model_id`` (cheap: one index probe)."""
    found = session.scalar(
        select(Embedding.article_id).where(Embedding.model_id == model_id).limit(1)
    )
    return found is not None


def channel_deliveries(session: Session) -> dict[str, dict[str, Any]]:
    """Per channel name: how many outbox rows are sent, failed and waiting, and the newest
    row's status, time and error (errors were redacted when stored)."""
    out: dict[str, dict[str, Any]] = {}
    counts = session.execute(
        select(Delivery.channel, Delivery.status, func.count()).group_by(
            Delivery.channel, Delivery.status
        )
    )
    for channel, status, n in counts:
        row = out.setdefault(channel, {"sent": 0, "failed": 0, "waiting": 0, "last": None})
        key = {DeliveryStatus.SENT: "sent", DeliveryStatus.FAILED: "failed"}.get(status)
        if key:
            row[key] += int(n)
        elif status is not DeliveryStatus.DIGESTED:
            row["waiting"] += int(n)
    newest = select(Delivery.channel, func.max(Delivery.id).label("id")).group_by(Delivery.channel)
    ids = [row.id for row in session.execute(newest)]
    for d in session.scalars(select(Delivery).where(Delivery.id.in_(ids))):
        out[d.channel]["last"] = {
            "status": str(d.status),
            "at": d.sent_at or d.created_at,
            "error": d.last_error,
        }
    return out
