"""Queries of the matching stage: pending articles (newest first), vectors, matches, feedback.

The pending-article query is the heart of "a fresh article is never stuck behind a backlog":
it is re-run for every small batch and orders non-history articles before history ones and, within
each, the most recently published first. On PostgreSQL the rows are locked with
``FOR UPDATE SKIP LOCKED`` so several workers share a backlog without matching an article twice;
SQLite has a single writer anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session

from monitor.clock import utcnow
from monitor.errors import MonitorError, NotFoundError
from monitor.store.models import (
    Article,
    ArticleBody,
    Embedding,
    Feedback,
    FeedbackEvent,
    Match,
    Topic,
)


def claim_pending(
    session: Session,
    limit: int,
    *,
    history: bool | None = None,
    page_wait_until: datetime | None = None,
) -> list[Article]:
    """Up to ``limit`` unmatched articles, newest published first: non-history before history,
    or only one kind when ``history`` is given (so only the rows used are locked).

    With ``page_wait_until``, an article whose page is still being fetched (full text) is left
    for later unless it was stored at or before that time: it waits for its page so long, then
    is matched on its summary."""
    query = select(Article).where(Article.matched_at.is_(None))
    if history is not None:
        query = query.where(Article.is_history.is_(history))
    if page_wait_until is not None:
        waiting = (
            select(ArticleBody.article_id)
            .where(ArticleBody.article_id == Article.id, ArticleBody.status == "pending")
            .exists()
        )
        query = query.where(or_(Article.fetched_at <= page_wait_until, ~waiting))
    query = query.order_by(
        Article.is_history.asc(), Article.published_at.desc(), Article.id.desc()
    ).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Article)
    return list(session.scalars(query))


def count_pending(session: Session) -> int:
    return session.scalar(select(func.count()).where(Article.matched_at.is_(None))) or 0


def load_vectors(session: Session, article_ids: Iterable[int], model_id: str) -> dict[int, bytes]:
    """Stored vectors of ``article_ids`` made by ``model_id`` (others are stale)."""
    ids = list(article_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Embedding.article_id, Embedding.vector).where(
            Embedding.model_id == model_id, Embedding.article_id.in_(ids)
        )
    )
    return {int(aid): bytes(vec) for aid, vec in rows}


def save_vectors(session: Session, model_id: str, dim: int, vectors: dict[int, bytes]) -> None:
    """Store vectors that ``load_vectors`` did not find for ``model_id``, in one executemany.

    An article keeps one row per model that embedded it. The caller holds the articles (claimed
    rows, locked on PostgreSQL), so no other worker inserts the same keys meanwhile.
    """
    if vectors:
        session.execute(
            insert(Embedding),
            [
                {"article_id": aid, "model_id": model_id, "dim": dim, "vector": data}
                for aid, data in vectors.items()
            ],
        )


def active_topic_ids(session: Session) -> dict[str, int]:
    """Name -> id of the active topics, as plain values (safe to keep past the session)."""
    rows = session.execute(select(Topic.name, Topic.id).where(Topic.active.is_(True)))
    return {str(name): int(topic_id) for name, topic_id in rows}


def existing_matches(session: Session, article_ids: Sequence[int]) -> set[tuple[int, int]]:
    """(article_id, topic_id) pairs already matched, so a retried batch inserts no duplicate."""
    if not article_ids:
        return set()
    rows = session.execute(
        select(Match.article_id, Match.topic_id).where(Match.article_id.in_(list(article_ids)))
    )
    return {(a, t) for a, t in rows}


def add_match(
    session: Session,
    article: Article,
    topic_id: int,
    score: float,
    semantic: float,
    explanation: dict[str, Any],
    alerted: bool,
) -> Match:
    """Insert a match (flushed, so its id can key deliveries in the same transaction)."""
    row = Match(
        article_id=article.id,
        topic_id=topic_id,
        score=score,
        semantic_score=semantic,
        explanation=explanation,
        published_at=article.published_at,
        alerted=alerted,
    )
    session.add(row)
    session.flush()
    return row


def mark_matched(session: Session, article_ids: Sequence[int], now: datetime) -> None:
    if article_ids:
        session.execute(
            update(Article).where(Article.id.in_(list(article_ids))).values(matched_at=now)
        )


def set_vector_deferred(session: Session, article_ids: Sequence[int], deferred: bool) -> None:
    """Mark articles matched without a vector (``deferred``), for :func:`claim_deferred` to
    embed later, or clear the mark once their vector is made."""
    if article_ids:
        session.execute(
            update(Article)
            .where(Article.id.in_(list(article_ids)))
            .values(vector_deferred=deferred)
        )


def claim_deferred(session: Session, limit: int) -> list[Article]:
    """Up to ``limit`` articles whose vector was deferred, newest (highest id) first: what was
    stored last is what a search most likely looks for. Locked like :func:`claim_pending`."""
    query = (
        select(Article)
        .where(Article.vector_deferred.is_(True))
        .order_by(Article.vector_deferred, Article.id.desc())
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Article)
    return list(session.scalars(query))


def count_deferred(session: Session) -> int:
    """Articles waiting for their deferred vector (search does not see them yet)."""
    query = select(func.count()).select_from(Article).where(Article.vector_deferred.is_(True))
    return session.scalar(query) or 0


def feedback_for_topic(session: Session, topic_id: int) -> list[tuple[Article, bool]]:
    """Judged articles of a topic, oldest judgement first."""
    rows = session.execute(
        select(Article, Feedback.relevant)
        .join(Feedback, Feedback.article_id == Article.id)
        .where(Feedback.topic_id == topic_id)
        .order_by(Feedback.id)
    )
    return [(article, bool(relevant)) for article, relevant in rows]


def feedback_version(session: Session) -> tuple[int, int, int, str]:
    """Changes whenever a judgement is added or changed: (count, newest id, how many say
    relevant, newest judgement time). A changed judgement keeps count and id but moves the
    time (``record_feedback`` stamps it), so the topic models are rebuilt for it too."""
    row = session.execute(
        select(
            func.count(Feedback.id),
            func.max(Feedback.id),
            func.count(Feedback.id).filter(Feedback.relevant.is_(True)),
            func.max(Feedback.created_at),
        )
    ).one()
    newest = row[3].isoformat() if row[3] is not None else ""
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), newest


def record_feedback(session: Session, match_id: int, relevant: bool) -> Feedback:
    """Store (or change) the user's judgement of a match's article for its topic."""
    found = session.get(Match, match_id)
    if found is None:
        raise NotFoundError(f"no match with id {match_id}")
    row = session.scalar(
        select(Feedback).where(
            Feedback.article_id == found.article_id, Feedback.topic_id == found.topic_id
        )
    )
    if row is None:
        row = Feedback(
            article_id=found.article_id,
            topic_id=found.topic_id,
            match_id=found.id,
            relevant=relevant,
        )
        session.add(row)
    else:
        row.relevant, row.match_id, row.created_at = relevant, found.id, utcnow()
    session.add(
        FeedbackEvent(
            article_id=found.article_id,
            topic_id=found.topic_id,
            match_id=found.id,
            relevant=relevant,
            created_at=row.created_at or utcnow(),
        )
    )
    session.flush()
    return row


def articles_since(session: Session, since: datetime, limit: int) -> list[Article]:
    """Stored articles published since ``since``, newest first (for `topics preview`)."""
    if since.tzinfo is None:
        raise MonitorError("articles_since needs an aware datetime")
    return list(
        session.scalars(
            select(Article)
            .where(Article.published_at >= since)
            .order_by(Article.published_at.desc(), Article.id.desc())
            .limit(limit)
        )
    )


def _without_vector(model_id: str) -> Any:
    """Condition: the article has no vector made by ``model_id``."""
    made = select(Embedding.article_id).where(
        Embedding.model_id == model_id, Embedding.article_id == Article.id
    )
    return ~made.exists()


def count_without_vector(session: Session, model_id: str) -> int:
    """How many stored articles ``monitor embed --all`` would embed for ``model_id``."""
    query = select(func.count()).select_from(Article).where(_without_vector(model_id))
    return session.scalar(query) or 0


def articles_without_vector(
    session: Session, model_id: str, after_id: int, limit: int
) -> list[Article]:
    """The next ``limit`` articles (by id, after ``after_id``) lacking a ``model_id`` vector.

    Walking by id keeps each batch's query cheap and lets a run stop and resume anywhere.
    """
    return list(
        session.scalars(
            select(Article)
            .where(Article.id > after_id, _without_vector(model_id))
            .order_by(Article.id)
            .limit(limit)
        )
    )
