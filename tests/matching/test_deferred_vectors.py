"""Candidates first: an article every topic's aliases veto is matched without a vector, the
alert path embeds only the rest, and the deferred vectors are made when matching is idle."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from monitor.config import Config
from monitor.embed import Embedder, Kind
from monitor.pipeline import matching as stage
from monitor.pipeline.runtime import Runtime, open_runtime
from monitor.store import db
from monitor.store import matches as store
from monitor.store.models import Article, Delivery, Embedding, Match
from tests.matching.test_stage import NOW, OFF_TOPIC, ON_TOPIC, add_articles

# names both sides (about something else): passes the aliases, so it is embedded and scored
BOTH_SIDES = (
    "Football: North Korea beat Russia 2-0 in a friendly",
    "The under-20 sides met in Moscow; Pyongyang's striker scored twice.",
)


class CountingEmbedder:
    """The real embedder, recording the texts of every ``encode`` call."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.calls: list[list[str]] = []
        self.on_encode: Callable[[], None] | None = None

    def encode(self, texts: Sequence[str], *, kind: Kind) -> np.ndarray:
        self.calls.append(list(texts))
        if self.on_encode is not None:
            self.on_encode()
        return self.inner.encode(texts, kind=kind)


@pytest.fixture
def counted(make_config: Callable[..., Config], embedder: Embedder) -> Iterator[Runtime]:
    rt = open_runtime(make_config(extra="[model]\nbatch_size = 8\n"))
    counting = CountingEmbedder(embedder)
    rt.resources.embedder = counting
    with db.session_scope(rt.sessions) as session:
        stage.topic_models(rt, session)  # the exemplars' encode calls, before counting
    counting.calls.clear()
    yield rt
    rt.close()


def _embedded(rt: Runtime) -> set[int]:
    with db.session_scope(rt.sessions) as session:
        return set(session.scalars(select(Embedding.article_id)))


def _deferred(rt: Runtime) -> set[int]:
    with db.session_scope(rt.sessions) as session:
        return set(session.scalars(select(Article.id).where(Article.vector_deferred.is_(True))))


def test_alert_path_embeds_only_articles_the_aliases_allow(counted: Runtime) -> None:
    rt = counted
    off = add_articles(rt, [(OFF_TOPIC, NOW - timedelta(minutes=i), False) for i in range(20)])
    on, both = add_articles(rt, [(ON_TOPIC, NOW, False), (BOTH_SIDES, NOW, False)])
    report = stage.MatchReport()
    assert stage._match_batch(rt, 8, report) == 22  # one live batch takes all 22
    assert (report.embedded, report.deferred) == (2, 20)
    assert _embedded(rt) == {on, both}
    assert _deferred(rt) == set(off)
    with db.session_scope(rt.sessions) as session:
        matched = set(session.scalars(select(Match.article_id)))
        assert on in matched
        assert matched <= {on, both}
        assert session.scalar(select(func.count()).select_from(Delivery)) == len(matched)
        assert session.scalar(select(func.count()).where(Article.matched_at.is_(None))) == 0
        assert store.count_deferred(session) == 20
    counting = rt.resources.embedder
    assert isinstance(counting, CountingEmbedder)
    assert len(counting.calls) == 1  # one call: the two articles that name both sides
    assert [ON_TOPIC[0] in t or BOTH_SIDES[0] in t for t in counting.calls[0]] == [True, True]


def test_deferred_vectors_are_made_when_idle_and_the_flag_cleared(counted: Runtime) -> None:
    rt = counted
    off = add_articles(rt, [(OFF_TOPIC, NOW - timedelta(minutes=i), False) for i in range(10)])
    report = stage.match_new(rt)
    assert (report.scored, report.embedded, report.deferred, report.backfilled) == (10, 0, 10, 10)
    assert _embedded(rt) == set(off)
    assert _deferred(rt) == set()
    # the first backfill batch is short (batch_size // 4 = 2); the next ones are sized from its
    # rate (about 5 s of work) within the live claim (batch_size x 8 = 64)
    counting = rt.resources.embedder
    assert isinstance(counting, CountingEmbedder)
    sizes = [len(c) for c in counting.calls]
    assert sizes[0] == 2
    assert sum(sizes) == 10
    assert max(sizes) <= 64
    assert stage.match_new(rt).backfilled == 0


def test_a_new_article_is_matched_before_the_rest_of_the_backfill(counted: Runtime) -> None:
    rt = counted
    add_articles(rt, [(OFF_TOPIC, NOW - timedelta(minutes=i), False) for i in range(10)])
    stage._match_batch(rt, 8, stage.MatchReport())  # defers all 10, backfills nothing
    counting = rt.resources.embedder
    assert isinstance(counting, CountingEmbedder)
    fresh: list[int] = []

    def publish_once() -> None:  # an article arrives while the first backfill batch embeds
        if not fresh:
            fresh.extend(add_articles(rt, [(ON_TOPIC, NOW + timedelta(minutes=1), False)]))

    counting.on_encode = publish_once
    counting.calls.clear()
    report = stage.match_new(rt)
    assert report.matched == 1
    assert report.alerted == 1
    # call 1: a backfill batch; call 2: the new article alone, ahead of the rest of the backfill
    assert len(counting.calls[0]) == 2
    assert len(counting.calls[1]) == 1
    assert ON_TOPIC[0] in counting.calls[1][0]
    assert sum(len(c) for c in counting.calls) == 11
    assert _deferred(rt) == set()


def test_a_topic_without_aliases_still_embeds_everything(
    make_config: Callable[..., Config], embedder: Embedder
) -> None:
    topics = """
[[topics]]
name = "meaning-only"
seed = ["seeds/alliance.txt"]
threshold = 0.4
channels = ["console"]
"""
    rt = open_runtime(make_config(topics=topics))
    rt.resources.embedder = embedder
    try:
        ids = add_articles(rt, [(OFF_TOPIC, NOW, False), (ON_TOPIC, NOW, False)])
        report = stage.match_new(rt)
        assert (report.embedded, report.deferred, report.backfilled) == (2, 0, 0)
        assert _embedded(rt) == set(ids)
    finally:
        rt.close()


def test_backfill_batches_last_about_five_seconds_within_bounds() -> None:
    size = stage.BackfillSize(64)
    assert size.size == 16  # before any measurement: a quarter of batch_size
    size.took(16, 0.2)  # 80 texts/s (MiniLM): 400 in 5 s
    assert size.size == 400
    size.took(400, 28.0)  # 14 texts/s (E5 on a loaded machine): 71 in 5 s
    assert size.size == 71
    size.took(71, 600.0)  # a stall: never below the first size
    assert size.size == 16
    size.took(16, 0.001)  # very fast: never above a live claim
    assert size.size == 512
    size.took(3, 10.0)  # a partial batch (the backlog ran out) measures nothing
    assert size.size == 512


def test_embed_all_clears_the_deferred_flag(counted: Runtime) -> None:
    rt = counted
    off = add_articles(rt, [(OFF_TOPIC, NOW - timedelta(minutes=i), False) for i in range(3)])
    stage._match_batch(rt, 8, stage.MatchReport())
    assert _deferred(rt) == set(off)
    assert stage.embed_stored(rt) == 3
    assert _deferred(rt) == set()
    assert stage.match_new(rt).backfilled == 0
