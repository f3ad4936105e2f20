"""Match listing, pagination, article detail, feedback and the vector index, on real databases."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import delete, select

from monitor.errors import NotFoundError
from monitor.store import db, read_models
from monitor.store.models import Article, Embedding, Feedback
from monitor.store.vectors import VectorIndex
from tests.query.data import HOSTILE_TITLE, NOW, unit


def test_filters_select_the_right_matches(env_any) -> None:
    with db.session_scope(env_any.runtime.sessions) as s:
        alliance, _ = read_models.list_matches(
            s, read_models.MatchFilter(topic="alliance", limit=100)
        )
        assert len(alliance) == 13
        assert {r["topic"] for r in alliance} == {"alliance"}
        assert [r["published"] for r in alliance] == sorted(
            (r["published"] for r in alliance), reverse=True
        )
        week, _ = read_models.list_matches(
            s, read_models.MatchFilter(topic="sanctions", since=read_models.parse_when("7d"))
        )
        assert [r["title"] for r in week] == ["Sanctions on shipping firms 0"]
        old, _ = read_models.list_matches(s, read_models.MatchFilter(until=NOW - timedelta(days=7)))
        assert [r["title"] for r in old] == ["Sanctions on shipping firms 1"]
        strong, _ = read_models.list_matches(s, read_models.MatchFilter(min_score=0.5, limit=100))
        assert all(r["score"] >= 0.5 for r in strong)
        assert len(strong) == 4
        dunia, _ = read_models.list_matches(
            s, read_models.MatchFilter(feed="Berita Dunia", limit=100)
        )
        assert len(dunia) == 6
        assert {r["source"] for r in dunia} == {"Berita Dunia"}
        with pytest.raises(NotFoundError, match="no topic 'nope'"):
            read_models.list_matches(s, read_models.MatchFilter(topic="nope"))


def test_cursor_pages_cover_everything_once(env_any) -> None:
    seen: list[int] = []
    cursor = None
    pages = 0
    with db.session_scope(env_any.runtime.sessions) as s:
        while True:
            rows, cursor = read_models.list_matches(
                s, read_models.MatchFilter(limit=4, cursor=cursor)
            )
            seen += [r["match_id"] for r in rows]
            pages += 1
            if cursor is None:
                break
    assert pages == 4  # 15 matches in pages of 4
    assert sorted(seen) == sorted(env_any.seeded.matches)
    assert len(set(seen)) == len(seen)


def test_bad_cursor_is_a_value_error(env) -> None:
    with db.session_scope(env.runtime.sessions) as s, pytest.raises(ValueError, match="cursor"):
        read_models.list_matches(s, read_models.MatchFilter(cursor="not-a-cursor"))


def test_parse_when_accepts_durations_and_dates() -> None:
    assert read_models.parse_when("7d", now=NOW) == NOW - timedelta(days=7)
    assert read_models.parse_when("2026-11-20").isoformat() == "2026-11-20T00:00:00+00:00"
    with pytest.raises(ValueError, match="duration"):
        read_models.parse_when("last tuesday")


def test_article_detail_has_matches_story_deliveries(env_any) -> None:
    seeded = env_any.seeded
    with db.session_scope(env_any.runtime.sessions) as s:
        first_match = seeded.matches[0]
        article_id = read_models.resolve_show_key(s, f"m{first_match}")
        assert read_models.resolve_show_key(s, f"a{article_id}") == article_id
        detail = read_models.article_detail(s, article_id)
    (m,) = detail["matches"]
    assert m["passage"] == "Seed passage 0 about troops"
    assert m["aliases"] == ["north korean", "russia"]
    assert m["story"]["id"] == seeded.story
    assert m["story"]["article_count"] == 2
    assert [(d["channel"], d["status"]) for d in m["deliveries"]] == [
        ("console", "sent"),
        ("email", "pending"),
    ]
    assert detail["embedded_with"] == ["test-model"]


def test_show_key_errors(env) -> None:
    with db.session_scope(env.runtime.sessions) as s:
        with pytest.raises(NotFoundError, match="no match 9999"):
            read_models.resolve_show_key(s, "m9999")
        with pytest.raises(NotFoundError, match="no article 9999"):
            read_models.article_detail(s, 9999)
        with pytest.raises(NotFoundError):
            read_models.resolve_show_key(s, "x1")


def test_feedback_is_one_row_per_article_and_topic(env_any) -> None:
    match_id = env_any.seeded.hostile_match
    with db.session_scope(env_any.runtime.sessions) as s:
        read_models.record_feedback(s, match_id, True)
    with db.session_scope(env_any.runtime.sessions) as s:
        read_models.record_feedback(s, match_id, False)
    with db.session_scope(env_any.runtime.sessions) as s:
        rows = s.scalars(select(Feedback)).all()
        assert [(r.match_id, r.relevant) for r in rows] == [(match_id, False)]
        listed, _ = read_models.list_matches(s, read_models.MatchFilter(limit=1))
        assert listed[0]["title"] == HOSTILE_TITLE
        assert listed[0]["feedback"] is False


def test_feed_health_and_topics(env) -> None:
    with db.session_scope(env.runtime.sessions) as s:
        feeds = {f["name"]: f for f in read_models.list_feed_health(s)}
        topics = {t["name"]: t for t in read_models.list_topics(s)}
    assert feeds["Broken Feed"]["state"] == "erroring"
    assert feeds["World Desk"]["state"] == "ok"
    assert feeds["Berita Dunia"]["articles"] == 9
    assert topics["alliance"]["matches"] == 13
    assert topics["sanctions"]["matches"] == 2


def _vectors(env) -> dict[int, np.ndarray]:
    with db.session_scope(env.runtime.sessions) as s:
        return {
            e.article_id: np.frombuffer(e.vector, dtype=np.float32)
            for e in s.scalars(select(Embedding))
        }


def test_vector_index_ranks_by_cosine_and_filters(env_any) -> None:
    vectors = _vectors(env_any)
    index = VectorIndex("test-model")
    with db.session_scope(env_any.runtime.sessions) as s:
        assert index.refresh(s) == len(vectors)
        target = env_any.seeded.articles[3]
        hits = index.search(vectors[target], limit=3)
        assert hits[0][0] == target
        assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
        expected = sorted(vectors, key=lambda i: -float(vectors[i] @ vectors[target]))[:3]
        assert [h[0] for h in hits] == expected
        langs = {a.id: a.language for a in s.scalars(select(Article))}
        in_id = index.search(vectors[target], limit=50, lang="id")
        assert in_id
        assert all(langs[i] == "id" for i, _ in in_id)
        recent = index.search(vectors[target], limit=50, since=NOW - timedelta(hours=3))
        assert 0 < len(recent) < len(vectors)
    assert index.search(np.ones(5, dtype=np.float32), limit=3) == []  # other model's dimension


def test_vector_index_refresh_sees_late_and_deleted_rows(env, tmp_path) -> None:
    cache = tmp_path / "cache"
    index = VectorIndex("test-model", cache)
    sessions = env.runtime.sessions
    with db.session_scope(sessions) as s:
        index.refresh(s)
    total = len(index)
    rng = np.random.default_rng(1)
    late_vec = unit(rng)
    with db.session_scope(sessions) as s:
        oldest = min(env.seeded.articles)  # an old article embedded late (out of id order)
        s.execute(delete(Embedding).where(Embedding.article_id == oldest))
    with db.session_scope(sessions) as s:
        assert index.refresh(s) == 1
        assert len(index) == total - 1
        s.add(Embedding(article_id=oldest, model_id="test-model", dim=8, vector=late_vec.tobytes()))
    with db.session_scope(sessions) as s:
        assert index.refresh(s) == 1
        assert index.search(late_vec, limit=1)[0][0] == oldest
        assert index.refresh(s) == 0  # nothing new: no work, no rewrite
    reopened = VectorIndex("test-model", cache)  # the CLI's next run reads the saved cache
    assert len(reopened) == total
    assert reopened.search(late_vec, limit=1)[0][0] == oldest
    with db.session_scope(sessions) as s:
        assert reopened.refresh(s) == 0
