"""Matching stage: embed new articles (newest first), score them against topics, record matches.

``match_new`` works in small batches and re-runs the pending query before each one, so an article
published while a 40,000-entry history backlog is being embedded jumps the queue at the next
batch (seconds, not the tens of minutes the backlog takes). Each batch is one transaction:
vectors, matches, the outbox rows of non-history matches (``enqueue_alerts``) and ``matched_at``
are written together or not at all. The daemon runs this as its own job, in a scheduler thread,
so embedding never blocks polling.

Candidates first: when every topic has ``require`` groups, most articles name no side of any
story, and the aliases veto them whatever their vector. Those are marked matched without being
embedded (``vector_deferred``); only the rest are embedded and scored. The deferred vectors are
made when nothing is pending (``_backfill_batch``, newest first, batches of about five
seconds: :class:`BackfillSize`), for search and story grouping.
On the September stream 0.5% of the articles pass some topic's aliases, so the alert path
embeds ~200 times fewer texts and a new article waits at most for one short backfill batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from monitor import scoring
from monitor.config import Config, TopicConfig
from monitor.embed import (
    PASSAGE,
    Embedder,
    article_text,
    exemplar_encoder,
    from_bytes,
    load_embedder,
    model_id_for,
    to_bytes,
    uses_e5_prefixes,
)
from monitor.errors import ModelError
from monitor.logs import event
from monitor.pipeline import indexing
from monitor.pipeline.outbox import enqueue_alerts
from monitor.pipeline.runtime import Runtime
from monitor.store import db, matches, queries
from monitor.store import fulltext as fulltext_store
from monitor.store.models import Article

log = logging.getLogger(__name__)

# History batches are smaller than live ones: a fresh article waits at most for the history
# batch in flight, and on CPU a batch of 16 embeds nearly as fast per text as one of 64.
HISTORY_BATCH_DIVISOR = 4
# Live articles are claimed up to this many model batches at once and embedded in one call:
# sentence-transformers sorts the texts of a call by length before batching, so one call over
# 512 texts pads far less than eight calls over 64 (measured: the stage went from 76% to over
# 90% of raw encode throughput). History batches stay small so a fresh article never waits long.
LIVE_BATCH_MULTIPLIER = 8
# while deferred vectors are being made, the search index takes them in this often
BACKFILL_INDEX_EVERY_S = 30.0
# a backfill batch lasts about this long, so a new article waits at most about this long for it
BACKFILL_BATCH_S = 5.0


@dataclass
class MatchReport:
    embedded: int = 0
    # matched without a vector (every topic's aliases vetoed them), and vectors made later
    deferred: int = 0
    backfilled: int = 0
    scored: int = 0
    matched: int = 0
    alerted: int = 0
    batches: int = 0
    error: str = ""


def get_embedder(runtime: Runtime) -> Embedder:
    """The process's embedder, loaded on first use and kept in ``runtime.resources``."""
    if runtime.resources.embedder is None:
        runtime.resources.embedder = load_embedder(runtime.config.model)
    return runtime.resources.embedder


def scoring_params(config: Config, *, use_require: bool = True) -> scoring.ScoringParams:
    """How topics are built and scored for the configured model (E5 or not)."""
    return scoring.params_for(uses_e5_prefixes(config.model.name), use_require=use_require)


def full_text(article: Article, lead: str = "") -> str:
    """The text aliases are searched in: title, the whole summary, and the body lead that is
    embedded in place of a thin summary (full-text feeds)."""
    return (
        f"{article.title}\n{article.summary}\n{lead}"
        if lead
        else f"{article.title}\n{article.summary}"
    )


def ensure_vectors(
    session: Session, embedder: Embedder, articles: list[Article], max_seq_length: int
) -> tuple[dict[int, np.ndarray], int]:
    """Vectors of ``articles`` by the current model: stored ones reused, the rest embedded and
    stored. Returns (vectors by article id, how many were embedded now)."""
    stored = matches.load_vectors(session, [a.id for a in articles], embedder.model_id)
    vectors = {aid: from_bytes(data, embedder.dim) for aid, data in stored.items()}
    missing = [a for a in articles if a.id not in vectors]
    if missing:
        leads = fulltext_store.leads(session, [a.id for a in missing])  # full-text feeds
        texts = [
            article_text(a.title, leads.get(a.id) or a.summary, max_seq_length) for a in missing
        ]
        new = embedder.encode(texts, kind=PASSAGE)
        matches.save_vectors(
            session,
            embedder.model_id,
            embedder.dim,
            {a.id: to_bytes(v) for a, v in zip(missing, new, strict=True)},
        )
        vectors.update({a.id: v for a, v in zip(missing, new, strict=True)})
    return vectors, len(missing)


@dataclass(frozen=True)
class TopicRef:
    """A topic's identity as plain values: the row id (``Match.topic_id``) and its name.

    Caches hold this, never the ORM ``Topic`` row: a row outlives its session only until a
    rollback expires it (a dropped PostgreSQL connection did), and every later tick then
    crashed on ``topic.id`` with ``DetachedInstanceError``.
    """

    id: int
    name: str


ScoredTopic = tuple[TopicRef, scoring.TopicModel]


def count_without_vector(runtime: Runtime) -> int:
    """Stored articles with no vector by the configured model (after a switch of model); the
    model id comes from config, so counting never loads the model."""
    model_id = model_id_for(runtime.config.model)
    with db.session_scope(runtime.sessions) as session:
        return matches.count_without_vector(session, model_id)


def embed_stored(runtime: Runtime, progress: Callable[[int], None] | None = None) -> int:
    """Embed every stored article that has no vector by the configured model; returns how many.

    Without this, after a change of model, already-matched articles are embedded again only
    when something needs them (feedback, story grouping), and search does not see them. One
    transaction per batch: a stopped run keeps what it did and the next one resumes. Run it
    with the daemon stopped on PostgreSQL (both could insert one article's vector at once).
    """
    embedder = get_embedder(runtime)
    step = runtime.config.model.batch_size * LIVE_BATCH_MULTIPLIER
    after, total = 0, 0
    while not runtime.stop.is_set():
        with db.session_scope(runtime.sessions) as session:
            batch = matches.articles_without_vector(session, embedder.model_id, after, step)
            if not batch:
                break
            after = batch[-1].id
            _, embedded = ensure_vectors(
                session, embedder, batch, runtime.config.model.max_seq_length
            )
            matches.set_vector_deferred(session, [a.id for a in batch if a.vector_deferred], False)
        total += embedded
        if progress is not None:
            progress(embedded)
    if total:
        indexing.update_after_embedding(runtime, embedder.model_id)
    return total


def topic_models(runtime: Runtime, session: Session) -> list[ScoredTopic]:
    """Active topics as scoring models, built from config (plus judged articles' vectors).

    Rebuilt only when a topic's config, the model or the feedback change. The cache keeps
    plain values only, so a transaction rolled back after the build leaves it valid.
    """
    embedder = get_embedder(runtime)
    ids = matches.active_topic_ids(session)
    specs = [t for t in runtime.config.topics if t.name in ids]
    key = (
        embedder.model_id,
        tuple((ids[t.name], queries.topic_config_hash(t)) for t in specs),
        matches.feedback_version(session),
    )
    cached = runtime.resources.topics
    if cached is not None and cached.key == key:
        return list(cached.models)
    models = tuple(
        (
            TopicRef(ids[spec.name], spec.name),
            _build(runtime, session, embedder, spec, ids[spec.name]),
        )
        for spec in specs
    )
    runtime.resources.topics = TopicCache(key, models)
    return list(models)


def _build(
    runtime: Runtime, session: Session, embedder: Embedder, spec: TopicConfig, topic_id: int
) -> scoring.TopicModel:
    """One topic's model: its config's exemplars plus the articles judged for it."""
    feedback = feedback_examples(session, embedder, topic_id, runtime.config.model.max_seq_length)
    return scoring.build_topic(
        spec,
        exemplar_encoder(embedder),
        base_dir=runtime.config.base_dir,
        feedback=feedback,
        params=scoring_params(runtime.config),
    )


@dataclass(frozen=True)
class TopicCache:
    """What the models were built from (model id, topic ids and config hashes, feedback
    version) and the models; plain values only."""

    key: tuple[str, tuple[tuple[int, str], ...], tuple[int, int, int, str]]
    models: tuple[ScoredTopic, ...]


def feedback_examples(
    session: Session, embedder: Embedder, topic_id: int, max_seq_length: int
) -> list[scoring.FeedbackExample]:
    """A topic's judged articles with their vectors (embedded now if the model changed)."""
    judged = matches.feedback_for_topic(session, topic_id)
    if not judged:
        return []
    vectors, _ = ensure_vectors(session, embedder, [a for a, _ in judged], max_seq_length)
    return [scoring.FeedbackExample(a.title, vectors[a.id], relevant) for a, relevant in judged]


def match_new(runtime: Runtime) -> MatchReport:
    """Embed and score articles not yet matched, batch by batch, newest first; when none is
    pending, embed deferred vectors (for search) one short batch at a time.

    Alerts never wait for search vectors: an article that no topic's aliases allow is marked
    matched without a vector (``vector_deferred``), and the pending query is re-run before every
    backfill batch, so a new article waits at most for one short batch. Stops between batches
    when ``runtime.stop`` is set. A model failure or a database error from the driver (a
    dropped connection) is logged as one line and recorded in the report; the batch rolled
    back, so its articles stay pending and are retried next run.
    """
    report = MatchReport()
    batch_size = runtime.config.model.batch_size
    index_updated = time.monotonic()
    backfill = BackfillSize(batch_size)
    while not runtime.stop.is_set():
        try:
            done = _match_batch(runtime, batch_size, report)
            if done == 0:
                started = time.monotonic()
                done = _backfill_batch(runtime, backfill.size, report)
                backfill.took(done, time.monotonic() - started)
                if time.monotonic() - index_updated > BACKFILL_INDEX_EVERY_S:
                    indexing.update_after_embedding(runtime, get_embedder(runtime).model_id)
                    index_updated = time.monotonic()
        except ModelError as exc:
            report.error = str(exc)
            event(log, logging.ERROR, "matching failed", error=str(exc))
            break
        except (OperationalError, InterfaceError) as exc:  # e.g. a dropped connection
            report.error = f"database error: {exc.orig}"
            event(log, logging.ERROR, "matching interrupted; retried next run", error=report.error)
            break
        if done == 0:
            break
    if report.embedded or report.backfilled:
        indexing.update_after_embedding(runtime, get_embedder(runtime).model_id)
    if report.scored or report.backfilled:
        event(
            log,
            logging.INFO,
            "articles matched",
            scored=report.scored,
            embedded=report.embedded,
            deferred=report.deferred,
            backfilled=report.backfilled,
            matched=report.matched,
            alerted=report.alerted,
        )
    return report


def _match_batch(runtime: Runtime, batch_size: int, report: MatchReport) -> int:
    """One transaction: claim a batch, embed what can match, score, record. Returns articles
    handled (0 when nothing is pending)."""
    started = time.monotonic()
    with db.session_scope(runtime.sessions) as session:
        # live articles never wait for history ones embedded alongside them
        page_wait_until = runtime.clock.now() - timedelta(
            seconds=runtime.config.polling.full_text_wait
        )
        articles = matches.claim_pending(
            session,
            batch_size * LIVE_BATCH_MULTIPLIER,
            history=False,
            page_wait_until=page_wait_until,
        )
        if not articles:  # only history is pending: keep the batch short
            articles = matches.claim_pending(
                session, max(1, batch_size // HISTORY_BATCH_DIVISOR), history=True
            )
        if not articles:
            return 0
        params = scoring_params(runtime.config)
        models = topic_models(runtime, session)
        leads = fulltext_store.leads(session, [a.id for a in articles])
        texts = [full_text(a, leads.get(a.id, "")) for a in articles]
        # candidates first: an article every topic's aliases veto is decided without a vector
        candidates = [
            i
            for i, text in enumerate(texts)
            if any(scoring.can_match(model, text, params) for _, model in models)
        ]
        wanted = set(candidates)
        deferred = [a.id for i, a in enumerate(articles) if i not in wanted]
        embedded = 0
        if candidates:
            chosen = [articles[i] for i in candidates]
            vectors, embedded = ensure_vectors(
                session, get_embedder(runtime), chosen, runtime.config.model.max_seq_length
            )
            matrix = np.vstack([vectors[a.id] for a in chosen])
            chosen_texts = [texts[i] for i in candidates]
            seen = matches.existing_matches(session, [a.id for a in chosen])
            for topic, model in models:
                verdicts = scoring.score_many(model, chosen_texts, matrix, params)
                for article, verdict in zip(chosen, verdicts, strict=True):
                    if verdict.matched and (article.id, topic.id) not in seen:
                        _record(
                            session, runtime, article, topic, verdict, vectors[article.id], report
                        )
        matches.set_vector_deferred(session, deferred, True)
        matches.mark_matched(session, [a.id for a in articles], runtime.clock.now())
    report.batches += 1
    report.embedded += embedded
    report.deferred += len(deferred)
    report.scored += len(articles)
    event(
        log,
        logging.DEBUG,
        "match batch",
        articles=len(articles),
        embedded=embedded,
        deferred=len(deferred),
        seconds=round(time.monotonic() - started, 3),
    )
    return len(articles)


class BackfillSize:
    """How many deferred vectors one backfill batch makes: as many as the model embeds in about
    ``BACKFILL_BATCH_S`` (measured on the previous batch), between a quarter of ``batch_size``
    (the first batch, before any measurement) and a live claim (``batch_size`` x 8).

    Why not a fixed size: a new article waits for the batch in flight, so the batch is bounded in
    seconds; but small calls cost throughput (sentence-transformers sorts a call's texts by
    length before padding: all-MiniLM-L6-v2 reached 80% of its raw speed in calls of 16, over
    90% in calls of 512), and the same seconds hold 6 times more texts on MiniLM than on E5.
    """

    def __init__(self, batch_size: int) -> None:
        self.low = max(1, batch_size // HISTORY_BATCH_DIVISOR)
        self.high = max(self.low, batch_size * LIVE_BATCH_MULTIPLIER)
        self.size = self.low

    def took(self, articles: int, seconds: float) -> None:
        if articles >= self.size and seconds > 0:  # a full batch: its rate is a measurement
            wanted = int(articles / seconds * BACKFILL_BATCH_S)
            self.size = min(self.high, max(self.low, wanted))


def _backfill_batch(runtime: Runtime, size: int, report: MatchReport) -> int:
    """One transaction: embed a batch of deferred vectors (newest first) for search.
    Returns articles handled (0 when none is deferred)."""
    with db.session_scope(runtime.sessions) as session:
        articles = matches.claim_deferred(session, size)
        if not articles:
            return 0
        _, embedded = ensure_vectors(
            session, get_embedder(runtime), articles, runtime.config.model.max_seq_length
        )
        matches.set_vector_deferred(session, [a.id for a in articles], False)
    report.backfilled += embedded
    return len(articles)


def _record(
    session: Session,
    runtime: Runtime,
    article: Article,
    topic: TopicRef,
    verdict: scoring.Verdict,
    vector: np.ndarray,
    report: MatchReport,
) -> None:
    """Insert the match and, for a live (non-history) article, its deliveries."""
    explanation = scoring.explanation_dict(verdict.explanation)
    alerted = not article.is_history
    row = matches.add_match(
        session,
        article,
        topic.id,
        verdict.score,
        verdict.explanation.semantic,
        explanation,
        alerted=alerted,
    )
    report.matched += 1
    if alerted:
        enqueue_alerts(session, runtime, row, article, vector.tolist())
        report.alerted += 1
    event(
        log,
        logging.INFO,
        "article matched",
        article_id=article.id,
        topic=topic.name,
        score=round(verdict.score, 3),
        history=article.is_history,
    )
