"""Read-side queries for what leaves the web app by link: the judgement page that an alert's
signed link opens, and a topic's Atom feed. Plain dicts, like :mod:`monitor.store.read_models`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.errors import NotFoundError
from monitor.store.models import Article, Match, Topic
from monitor.store.read_models import explanation_aliases, explanation_passage, match_select

FEED_ENTRIES = 50  # entries in a topic's Atom feed: a reader polls far more often than that


def _select() -> Any:
    return match_select(Match.created_at, Article.summary)


def _row(row: Any) -> dict[str, Any]:
    explanation = row["explanation"] if isinstance(row["explanation"], dict) else {}
    return {
        "match_id": row["match_id"],
        "article_id": row["article_id"],
        "story_id": row["story_id"],
        "score": float(row["score"]),
        "title": row["title"] or "",
        "link": row["link"] or "",
        "summary": row["summary"] or "",
        "topic": row["topic"],
        "source": row["source"],
        "published": row["published_at"],
        "matched": row["created_at"],
        "passage": explanation_passage(explanation),
        "aliases": explanation_aliases(explanation),
        "feedback": row["relevant"],
    }


def match_brief(session: Session, match_id: int) -> dict[str, Any]:
    """One match with its article, topic, source and current judgement."""
    row = session.execute(_select().where(Match.id == match_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no match with id {match_id}")
    return _row(row)


def alerted_matches(
    session: Session, topic: str, limit: int = FEED_ENTRIES
) -> list[dict[str, Any]]:
    """A topic's alerted matches (the ones that reached a channel), newest first."""
    topic_id = session.scalar(select(Topic.id).where(Topic.name == topic))
    if topic_id is None:
        raise NotFoundError(f'no topic named "{topic}"')
    stmt = (
        _select()
        .where(Match.topic_id == topic_id, Match.alerted.is_(True))
        .order_by(Match.published_at.desc(), Match.id.desc())
        .limit(limit)
    )
    return [_row(r) for r in session.execute(stmt).mappings()]
