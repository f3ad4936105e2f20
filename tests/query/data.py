"""Deterministic test data written straight into the schema (polling/matching are other
branches): three feeds, two topics, articles with vectors, matches, a story, deliveries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.embed import PASSAGE
from monitor.store.db import session_scope
from monitor.store.models import Article, Delivery, Embedding, Feed, Match, Story, Topic

NOW = datetime.now(UTC).replace(microsecond=0)
HOSTILE_TITLE = (
    '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> Kim & Putin'
)
MODEL_ID = "test-model"


@dataclass
class Seeded:
    feeds: dict[str, int] = field(default_factory=dict)
    topics: dict[str, int] = field(default_factory=dict)
    articles: list[int] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)
    hostile_match: int = 0
    story: int = 0


def topic(session: Session, name: str, threshold: float = 0.35) -> Topic:
    row = session.scalar(select(Topic).where(Topic.name == name))
    if row is None:
        row = Topic(name=name, threshold=threshold)
        session.add(row)
        session.flush()
    return row


def unit(rng: np.random.Generator, dim: int = 8) -> np.ndarray:
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def populate(session: Session, n_matches: int = 12, model_id: str = MODEL_ID) -> Seeded:
    """``n_matches`` alliance matches an hour apart (the newest first), two sanctions matches,
    a hostile-titled match, unmatched articles, and a failing feed."""
    rng = np.random.default_rng(7)
    out = Seeded()
    feeds = [
        Feed(url="http://feeds.test/world.xml", name="World Desk", last_success_at=NOW),
        Feed(
            url="http://feeds.test/dunia.xml",
            name="Berita Dunia",
            language="id",
            last_success_at=NOW,
        ),
        Feed(
            url="http://feeds.test/broken.xml",
            name="Broken Feed",
            consecutive_errors=3,
            last_error="HTTP 503 from server",
        ),
    ]
    session.add_all(feeds)
    session.flush()
    out.feeds = {f.name: f.id for f in feeds}
    alliance, sanctions = topic(session, "alliance"), topic(session, "sanctions")
    out.topics = {"alliance": alliance.id, "sanctions": sanctions.id}

    def article(title: str, feed: Feed, hours_ago: float, lang: str = "en") -> Article:
        a = Article(
            feed_id=feed.id,
            entry_key=f"k{len(out.articles)}",
            title=title,
            link=f"http://feeds.test/a/{len(out.articles)}",
            summary=f"About {title}",
            language=lang,
            published_at=NOW - timedelta(hours=hours_ago),
        )
        session.add(a)
        session.flush()
        session.add(
            Embedding(article_id=a.id, model_id=model_id, dim=8, vector=unit(rng).tobytes())
        )
        out.articles.append(a.id)
        return a

    def match(a: Article, t: Topic, score: float, **kw: object) -> Match:
        m = Match(
            article_id=a.id,
            topic_id=t.id,
            score=score,
            semantic_score=score - 0.05,
            published_at=a.published_at,
            **kw,
        )
        session.add(m)
        session.flush()
        out.matches.append(m.id)
        return m

    first = None
    for i in range(n_matches):
        a = article(
            f"North Korean troops story {i}",
            feeds[i % 2],
            hours_ago=1 + i,
            lang="en" if i % 2 == 0 else "id",
        )
        m = match(
            a,
            alliance,
            0.40 + 0.01 * i,
            explanation={
                "passage": f"Seed passage {i} about troops",
                "semantic": 0.4,
                "aliases": [["north korean"], ["russia"]],
                "score": 0.4,
            },
        )
        first = first or (a, m)
    assert first is not None
    story = Story(
        topic_id=alliance.id, first_article_id=first[0].id, title="Troops story", article_count=2
    )
    session.add(story)
    session.flush()
    out.story = story.id
    first[1].story_id = story.id
    session.add(
        Delivery(
            match_id=first[1].id,
            channel="console",
            status="sent",
            attempts=1,
            idempotency_key=f"m{first[1].id}:console",
            sent_at=NOW,
        )
    )
    session.add(
        Delivery(
            match_id=first[1].id,
            channel="email",
            status="pending",
            attempts=2,
            last_error="SMTP 451 try later",
            idempotency_key=f"m{first[1].id}:email",
        )
    )
    for i in range(2):
        a = article(f"Sanctions on shipping firms {i}", feeds[0], hours_ago=30 + 24 * 9 * i)
        match(a, sanctions, 0.6 - 0.2 * i, explanation={})  # missing keys must be tolerated
    hostile = article(HOSTILE_TITLE, feeds[0], hours_ago=0.5)
    hostile.link = "javascript:window.__pwned=3"
    out.hostile_match = match(
        hostile, alliance, 0.9, explanation={"passage": "<b>bold</b> passage & <i>more</i>"}
    ).id
    for i in range(3):
        article(f"Ordinary news {i}", feeds[1], hours_ago=2 + i)
    session.flush()
    return out


def store_real_vectors(sessions: Any, embedder: Any) -> dict[str, str]:
    """Four articles embedded with the real model (two about the story, EN and ID)."""
    texts = {
        "North Korea sends thousands of soldiers to fight for Russia": "en",
        "Korea Utara kirim tentara ke Rusia untuk perang di Ukraina": "id",
        "Central bank keeps interest rates unchanged": "en",
        "Heatwave and wildfires across southern Europe": "en",
    }
    vectors = embedder.encode(list(texts), kind=PASSAGE)
    with session_scope(sessions) as s:
        feed = s.scalars(select(Feed).order_by(Feed.id)).first()
        assert feed is not None
        for i, (title, lang) in enumerate(texts.items()):
            a = Article(
                feed_id=feed.id,
                entry_key=f"real{i}",
                title=title,
                language=lang,
                published_at=NOW - timedelta(days=i * 10),
            )
            s.add(a)
            s.flush()
            s.add(
                Embedding(
                    article_id=a.id,
                    model_id=embedder.model_id,
                    dim=384,
                    vector=vectors[i].tobytes(),
                )
            )
    return texts
