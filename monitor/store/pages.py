"""Read-side queries only the web app's pages need: a match with its story and judgements,
a topic's matches by day and score spread, and the choices of the filter form.

The matches list itself is :func:`monitor.store.read_models.list_matches`, shared with
``GET /api/matches`` and ``monitor matches``. Plain dicts, like the rest of the read side.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from monitor.errors import NotFoundError
from monitor.store.models import Article, Feed, Feedback, FeedbackEvent, Match, Topic

STORY_ARTICLES = 50  # a story page lists this many of its other articles
LANGUAGE_SAMPLE = 2000  # newest matches whose languages fill the language choices
FALSE_ALARMS = 10


def story_articles(session: Session, story_id: int, except_match: int) -> list[dict[str, Any]]:
    """The story's other matched articles (other outlets), oldest first: how it spread."""
    rows = session.execute(
        select(
            Match.id,
            Match.score,
            Match.published_at,
            Article.title,
            Article.link,
            Feed.name,
            Feed.title,
            Feed.url,
        )
        .join(Article, Article.id == Match.article_id)
        .join(Feed, Feed.id == Article.feed_id)
        .where(Match.story_id == story_id, Match.id != except_match)
        .order_by(Match.published_at, Match.id)
        .limit(STORY_ARTICLES)
    ).all()
    return [
        {
            "match_id": mid,
            "score": round(float(score), 4),
            "published": published,
            "title": title,
            "link": link,
            "source": name or ftitle or url,
        }
        for mid, score, published, title, link, name, ftitle, url in rows
    ]


def judgements(session: Session, article_id: int) -> list[dict[str, Any]]:
    """Every judgement ever made of this article, for any topic, newest first (matching
    learns from the latest per topic)."""
    rows = session.execute(
        select(FeedbackEvent.relevant, FeedbackEvent.created_at, FeedbackEvent.match_id, Topic.name)
        .join(Topic, Topic.id == FeedbackEvent.topic_id)
        .where(FeedbackEvent.article_id == article_id)
        .order_by(FeedbackEvent.created_at.desc(), FeedbackEvent.id.desc())
    ).all()
    return [
        {"relevant": relevant, "when": at, "match_id": mid, "topic": topic}
        for relevant, at, mid, topic in rows
    ]


def topic_row(session: Session, name: str) -> Topic:
    topic = session.scalar(select(Topic).where(Topic.name == name))
    if topic is None:
        raise NotFoundError(f'no topic named "{name}"')
    return topic


def matches_by_day(
    session: Session, topic_id: int, days: int, now: datetime | None = None
) -> list[tuple[date, int, int]]:
    """(day, matches, alerted) for each of the last ``days`` UTC days, oldest first, empty
    days included. One range scan of ``ix_matches_topic_id_published_at``; days are counted
    here, the same on SQLite and PostgreSQL (no dialect date functions)."""
    today = (now or datetime.now(UTC)).date()
    first = today - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    counts: dict[date, list[int]] = {first + timedelta(days=i): [0, 0] for i in range(days)}
    rows = session.execute(
        select(Match.published_at, Match.alerted).where(
            Match.topic_id == topic_id, Match.published_at >= start
        )
    )
    for published, alerted in rows:
        bucket = counts.get(published.date())
        if bucket is not None:
            bucket[0] += 1
            bucket[1] += int(bool(alerted))
    return [(day, n, a) for day, (n, a) in counts.items()]


def match_scores(session: Session, topic_id: int, since: datetime) -> list[float]:
    """The scores of a topic's matches since ``since`` (for the histogram)."""
    return [
        float(s)
        for s in session.scalars(
            select(Match.score).where(Match.topic_id == topic_id, Match.published_at >= since)
        )
    ]


def false_alarms(
    session: Session, topic_id: int, limit: int = FALSE_ALARMS
) -> list[dict[str, Any]]:
    """The topic's matches judged not relevant, most recently judged first."""
    rows = session.execute(
        select(Match.id, Match.score, Article.title, Article.link, Feedback.created_at)
        .join(
            Feedback,
            and_(Feedback.article_id == Match.article_id, Feedback.topic_id == Match.topic_id),
        )
        .join(Article, Article.id == Match.article_id)
        .where(Match.topic_id == topic_id, Feedback.relevant.is_(False))
        .order_by(Feedback.created_at.desc())
        .limit(limit)
    ).all()
    return [
        {"match_id": mid, "score": round(float(score), 4), "title": t, "link": link, "judged": at}
        for mid, score, t, link, at in rows
    ]


def filter_choices(session: Session) -> dict[str, list[Any]]:
    """Topics, feeds and languages for the matches page's form. Languages come from the newest
    matches (a bounded index scan), not from every article."""
    newest = (
        select(Match.article_id)
        .order_by(Match.published_at.desc())
        .limit(LANGUAGE_SAMPLE)
        .subquery()
    )
    languages = session.scalars(
        select(Article.language).join(newest, newest.c.article_id == Article.id).distinct()
    ).all()
    return {
        "topics": list(session.scalars(select(Topic.name).order_by(Topic.name))),
        "feeds": [
            {"id": fid, "name": name or title or url}
            for fid, name, title, url in session.execute(
                select(Feed.id, Feed.name, Feed.title, Feed.url).order_by(Feed.name, Feed.id)
            )
        ],
        "languages": sorted({lang for lang in languages if lang}),
    }


def feed_ids_with_urls(session: Session, urls: set[str]) -> set[int]:
    """Ids of the feeds stored under these URLs (the feeds config.toml lists)."""
    if not urls:
        return set()
    return set(session.scalars(select(Feed.id).where(Feed.url.in_(urls))))
