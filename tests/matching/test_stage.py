"""The matching stage on a real database with the real model: matches, explanations, the
outbox hand-off, history articles, newest-first order, re-embedding on a model change, feedback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.pipeline import matching as stage
from monitor.pipeline.runtime import Runtime, open_runtime
from monitor.store import db
from monitor.store import matches as store
from monitor.store.models import Article, Delivery, Embedding, Feed, Match

NOW = datetime.now(UTC)
ON_TOPIC = (
    "Kim Jong Un arrives in Russia for talks with Putin",
    "North Korea's leader met Vladimir Putin to discuss sending artillery shells to Moscow.",
)
OFF_TOPIC = ("Local bakery wins bread award", "The bakery's sourdough was judged the best in town.")


@pytest.fixture
def runtime(make_config: Callable[..., Config]) -> Iterator[Runtime]:
    rt = open_runtime(make_config())
    yield rt
    rt.close()


def add_articles(rt: Runtime, specs: list[tuple[tuple[str, str], datetime, bool]]) -> list[int]:
    """Insert articles (text, published_at, is_history) under one feed; return their ids."""
    with db.session_scope(rt.sessions) as session:
        feed = session.scalar(select(Feed).where(Feed.url == "http://127.0.0.1/feed"))
        if feed is None:
            feed = Feed(url="http://127.0.0.1/feed", name="test")
            session.add(feed)
            session.flush()
        rows = []
        for (title, summary), published, history in specs:
            row = Article(
                feed_id=feed.id,
                entry_key=f"{title}-{published.isoformat()}",
                title=title,
                summary=summary,
                published_at=published,
                is_history=history,
            )
            session.add(row)
            rows.append(row)
        session.flush()
        return [r.id for r in rows]


def test_live_match_stores_explanation_and_enqueues_delivery(runtime: Runtime) -> None:
    on, off = add_articles(runtime, [(ON_TOPIC, NOW, False), (OFF_TOPIC, NOW, False)])
    report = stage.match_new(runtime)
    assert (report.scored, report.matched, report.alerted) == (2, 1, 1)
    # the off-topic article names neither side: its vector is made after matching (deferred)
    assert (report.embedded, report.deferred, report.backfilled) == (1, 1, 1)
    with db.session_scope(runtime.sessions) as session:
        m = session.scalars(select(Match)).one()
        assert m.article_id == on
        assert m.alerted
        article = session.get(Article, on)
        assert article is not None
        assert m.published_at == article.published_at
        assert m.explanation["passage"]
        assert m.explanation["score"] == pytest.approx(m.score, abs=1e-3)
        assert "kim jong un" in m.explanation["aliases"]
        deliveries = session.scalars(select(Delivery)).all()
        assert [(d.match_id, d.channel) for d in deliveries] == [(m.id, "console")]
        assert all(a.matched_at is not None for a in session.scalars(select(Article)))
        assert (
            session.scalar(select(Embedding.model_id).where(Embedding.article_id == off))
            == "packaged:all-MiniLM-L6-v2@128"
        )
    assert stage.match_new(runtime).scored == 0  # nothing left; no duplicate matches


def test_history_articles_match_without_deliveries(runtime: Runtime) -> None:
    add_articles(runtime, [(ON_TOPIC, NOW - timedelta(days=3), True)])
    report = stage.match_new(runtime)
    assert (report.matched, report.alerted) == (1, 0)
    with db.session_scope(runtime.sessions) as session:
        assert session.scalars(select(Match)).one().alerted is False
        assert session.scalars(select(Delivery)).all() == []


def test_pending_order_is_live_first_then_newest(runtime: Runtime) -> None:
    ids = add_articles(
        runtime,
        [
            (OFF_TOPIC, NOW - timedelta(hours=1), True),  # history, newer
            (OFF_TOPIC, NOW - timedelta(hours=5), False),  # live, older
            (OFF_TOPIC, NOW - timedelta(days=2), True),  # history, oldest
            (OFF_TOPIC, NOW - timedelta(minutes=1), False),  # live, newest
        ],
    )
    with db.session_scope(runtime.sessions) as session:
        order = [a.id for a in store.claim_pending(session, 10)]
    assert order == [ids[3], ids[1], ids[0], ids[2]]


def test_article_published_during_backlog_is_taken_by_the_next_batch(
    make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(extra="[model]\nbatch_size = 4\n")
    rt = open_runtime(config)
    try:
        add_articles(rt, [(OFF_TOPIC, NOW - timedelta(days=1, minutes=i), True) for i in range(12)])
        fresh: list[int] = []
        original = store.claim_pending

        def claim_and_publish(session: Session, limit: int, **options: Any) -> list[Article]:
            batch = original(session, limit, **options)
            if not fresh:  # an article arrives while the first batch is being processed
                fresh.extend(add_articles(rt, [(ON_TOPIC, NOW, False)]))
            return batch

        with monkeypatch.context() as patch:
            patch.setattr(store, "claim_pending", claim_and_publish)
            stage._match_batch(rt, 4, stage.MatchReport())
        with db.session_scope(rt.sessions) as session:
            assert store.claim_pending(session, 4)[0].id == fresh[0]
        rt.stop.set()  # a stop request ends match_new before any batch
        assert stage.match_new(rt).scored == 0
    finally:
        rt.close()


def test_model_change_embeds_again(make_config: Callable[..., Config]) -> None:
    rt = open_runtime(make_config())
    try:
        (aid,) = add_articles(rt, [(ON_TOPIC, NOW, False)])
        stage.match_new(rt)
    finally:
        rt.close()
    rt = open_runtime(make_config(extra="[model]\nmax_seq_length = 64\n"))
    try:
        with db.session_scope(rt.sessions) as session:
            article = session.get(Article, aid)
            assert article is not None
            embedder = stage.get_embedder(rt)
            _, embedded = stage.ensure_vectors(session, embedder, [article], 64)
            assert embedded == 1
            _, again = stage.ensure_vectors(session, embedder, [article], 64)
            assert again == 0
        with db.session_scope(rt.sessions) as session:
            ids = sorted(
                session.scalars(select(Embedding.model_id).where(Embedding.article_id == aid))
            )
        assert ids == ["packaged:all-MiniLM-L6-v2@128", "packaged:all-MiniLM-L6-v2@64"]
    finally:
        rt.close()


def test_feedback_makes_the_topic_use_judged_articles(runtime: Runtime) -> None:
    (aid,) = add_articles(runtime, [(ON_TOPIC, NOW, False)])
    stage.match_new(runtime)
    with db.session_scope(runtime.sessions) as session:
        before = {m.name: m for _, m in stage.topic_models(runtime, session)}["alliance"]
        match_id = session.scalars(select(Match.id)).one()
        store.record_feedback(session, match_id, relevant=False)
    with db.session_scope(runtime.sessions) as session:
        after = {m.name: m for _, m in stage.topic_models(runtime, session)}["alliance"]
        assert [e.source for e in after.negatives] == ["feedback:irrelevant"]
        assert len(before.negatives) == 0
        article = session.get(Article, aid)
        assert article is not None
        vec = stage.ensure_vectors(session, stage.get_embedder(runtime), [article], 128)[0][aid]
    from monitor import scoring

    text = "\n".join(ON_TOPIC)
    assert scoring.score_one(after, text, vec).score < scoring.score_one(before, text, vec).score


@pytest.mark.postgres
def test_pending_claim_skips_rows_locked_by_another_worker(
    make_config: Callable[..., Config], pg_url: str
) -> None:
    rt = open_runtime(make_config(db_url=pg_url))
    try:
        ids = add_articles(rt, [(OFF_TOPIC, NOW - timedelta(minutes=i), False) for i in range(4)])
        first = rt.sessions()
        try:
            held = [a.id for a in store.claim_pending(first, 2)]
            with db.session_scope(rt.sessions) as second:
                other = [a.id for a in store.claim_pending(second, 4)]
        finally:
            first.rollback()
            first.close()
        assert held == ids[:2]
        assert other == ids[2:]
    finally:
        rt.close()


def test_live_batches_hold_only_live_articles_and_history_batches_are_short(
    runtime: Runtime,
) -> None:
    live = add_articles(runtime, [(OFF_TOPIC, NOW, False)])
    add_articles(
        runtime, [(OFF_TOPIC, NOW - timedelta(days=1, minutes=i), True) for i in range(20)]
    )
    report = stage.MatchReport()
    assert stage._match_batch(runtime, 64, report) == 1  # the live one, not 63 history with it
    with db.session_scope(runtime.sessions) as session:
        article = session.get(Article, live[0])
        assert article is not None
        assert article.matched_at is not None
        assert store.count_pending(session) == 20
    assert stage._match_batch(runtime, 64, report) == 64 // stage.HISTORY_BATCH_DIVISOR


class _Interrupted(Exception):
    """Stands for a dropped connection: anything that rolls a session back."""


def test_topic_cache_survives_a_rolled_back_session(runtime: Runtime) -> None:
    # the models are built (and cached) inside a transaction that then rolls back, as when
    # PostgreSQL drops the connection mid-batch; the cache must still score and record later
    def build_then_fail() -> None:
        with db.session_scope(runtime.sessions) as session:
            stage.topic_models(runtime, session)
            raise _Interrupted

    with pytest.raises(_Interrupted):
        build_then_fail()
    (aid,) = add_articles(runtime, [(ON_TOPIC, NOW, False)])
    report = stage.match_new(runtime)
    assert (report.matched, report.alerted, report.error) == (1, 1, "")
    with db.session_scope(runtime.sessions) as session:
        assert session.scalars(select(Match.article_id)).all() == [aid]


def test_topic_cache_holds_plain_values_only(runtime: Runtime) -> None:
    with db.session_scope(runtime.sessions) as session:
        stage.topic_models(runtime, session)
    cached = runtime.resources.topics
    refs = [ref for ref, _ in cached.models]
    assert [type(ref) for ref in refs] == [stage.TopicRef]
    assert refs[0].name == "alliance"
    assert isinstance(refs[0].id, int)


def test_a_changed_judgement_rebuilds_the_topic(runtime: Runtime) -> None:
    add_articles(runtime, [(ON_TOPIC, NOW, False)])
    stage.match_new(runtime)
    with db.session_scope(runtime.sessions) as session:
        match_id = session.scalars(select(Match.id)).one()
        store.record_feedback(session, match_id, relevant=True)
    with db.session_scope(runtime.sessions) as session:
        (_, relevant_model), *_ = stage.topic_models(runtime, session)
        store.record_feedback(session, match_id, relevant=False)  # the user changes their mind
    with db.session_scope(runtime.sessions) as session:
        (_, irrelevant_model), *_ = stage.topic_models(runtime, session)
    assert "feedback:relevant" in [e.source for e in relevant_model.positives]
    assert "feedback:relevant" not in [e.source for e in irrelevant_model.positives]
    assert [e.source for e in irrelevant_model.negatives] == ["feedback:irrelevant"]
