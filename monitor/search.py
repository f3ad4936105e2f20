"""Glue for the read side: the query embedder and semantic search (store + embed)."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from monitor.embed import QUERY, model_id_for, uses_e5_prefixes
from monitor.errors import MonitorError
from monitor.logs import event
from monitor.pipeline import indexing
from monitor.pipeline.matching import get_embedder
from monitor.pipeline.runtime import Runtime
from monitor.store import annindex, db, read_models
from monitor.store.annindex import Filters, Progress
from monitor.store.vectors import VectorIndex

log = logging.getLogger(__name__)


def vector_index(runtime: Runtime, model_id: str) -> VectorIndex:
    """The exact in-memory scan used when ``search.index_dir = ""`` (no persistent index)."""
    indexes = runtime.resources.vector_indexes
    if model_id not in indexes:
        indexes[model_id] = VectorIndex(model_id, None, 2.0, write_cache=False)
    return indexes[model_id]


# Lowest similarity `monitor search` shows by default, per model: cosine scales differ (E5
# similarities all sit between about 0.7 and 1). Chosen on dev.jsonl: see default_min_score.
E5_MIN_SCORE = 0.80
OTHER_MIN_SCORE = 0.10
MIN_SCORE_HELP = (
    f"Lowest similarity shown; default {E5_MIN_SCORE} for E5 models "
    f"(packaged:multilingual-e5-small), {OTHER_MIN_SCORE} for others."
)


def default_min_score(model_name: str) -> float:
    """The similarity below which a stored article is not shown as a search result.

    Rule: the highest floor that still shows 95% of the reports of a query's story. Measured on
    dev.jsonl, the shipped topic's 16 descriptions and examples as queries: multilingual-e5-small
    at 0.80 shows 94.9% of the 393 relevant items and 3.0% of 5,000 background ones;
    all-MiniLM-L6-v2 at 0.10 shows 95.0% and 33.5% (docs/notes/match.md).
    """
    return E5_MIN_SCORE if uses_e5_prefixes(model_name) else OTHER_MIN_SCORE


def search_articles(
    runtime: Runtime,
    text: str,
    *,
    limit: int = 20,
    since: datetime | None = None,
    until: datetime | None = None,
    lang: str | None = None,
    topic: str | None = None,
    feed: str | None = None,
    min_score: float | None = None,
    one_shot: bool = False,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Stored articles (not only matches) at least ``min_score`` similar to ``text`` (by default
    the model's :func:`default_min_score`), most similar first; ``topic`` keeps articles matched
    to that topic, ``feed`` those of one feed (id, URL or name).

    ``text`` is embedded as a query and articles were stored as passages: for E5 models that is
    the asymmetric comparison the model was trained for (a short question against documents).
    ``progress`` hears of a rebuild of the search index (the CLI draws a bar).
    """
    embedder = get_embedder(runtime)
    query = embedder.encode([text], kind=QUERY)[0]
    floor = default_min_score(runtime.config.model.name) if min_score is None else min_score
    index = indexing.search_index(runtime, embedder.model_id)
    if index is not None:
        try:
            indexing.sync_for_search(runtime, index, throttle=not one_shot, progress=progress)
        except OSError as exc:  # e.g. an index folder this user cannot write: scan instead
            event(log, logging.WARNING, "search index unusable; exact scan", error=str(exc))
            index = None
    with db.session_scope(runtime.sessions) as session:
        feed_ids, article_ids = annindex.resolve_filters(session, topic=topic, feed=feed)
        if index is not None:
            flt = Filters(since, until, lang, feed_ids, article_ids)
            hits = index.search(query, limit=limit, filters=flt, min_score=floor, session=session)
        else:
            hits = _exact_search(
                runtime,
                session,
                embedder.model_id,
                query,
                limit,
                since,
                until,
                lang,
                feed_ids,
                article_ids,
                floor,
            )
        rows = read_models.articles_by_id(session, [article_id for article_id, _ in hits])
    return [{**rows[i], "similarity": round(score, 4)} for i, score in hits if i in rows]


def _exact_search(
    runtime: Runtime,
    session: Any,
    model_id: str,
    query: Any,
    limit: int,
    since: datetime | None,
    until: datetime | None,
    lang: str | None,
    feed_ids: tuple[int, ...] | None,
    article_ids: Any,
    floor: float,
) -> list[tuple[int, float]]:
    """No persistent index: scan every vector in memory (topic and feed filters applied after,
    over a fetch of every vector that passes date and language)."""
    exact = vector_index(runtime, model_id)
    exact.refresh(session)
    wide = limit if feed_ids is None and article_ids is None else max(len(exact), 1)
    hits = exact.search(query, limit=wide, since=since, until=until, lang=lang, min_score=floor)
    if feed_ids is not None or article_ids is not None:
        allowed = annindex.allowed_ids(session, feed_ids, article_ids, [i for i, _ in hits])
        hits = [h for h in hits if h[0] in allowed][:limit]
    return hits


def warm_up(runtime: Runtime) -> None:
    """Load the model and the vectors before the first search (a server's start-up)."""
    started = time.monotonic()
    try:
        with db.session_scope(runtime.sessions) as session:
            if not read_models.has_vectors(session, current_model_id(runtime)):
                return  # nothing to search yet: the first search loads lazily
        embedder = get_embedder(runtime)
        index = indexing.search_index(runtime, embedder.model_id)
        if index is not None:
            indexing.sync_for_search(runtime, index, throttle=False)
        else:
            with db.session_scope(runtime.sessions) as session:
                vector_index(runtime, embedder.model_id).refresh(session, force=True)
    except MonitorError as exc:
        event(log, logging.WARNING, "search warm-up failed", error=str(exc))
        return
    event(
        log,
        logging.INFO,
        "search ready",
        vectors=len(index) if index is not None else len(vector_index(runtime, embedder.model_id)),
        seconds=round(time.monotonic() - started, 1),
    )


def current_model_id(runtime: Runtime) -> str:
    """The model id whose vectors count as "embedded" (for the backlog metric), without
    loading the model: the id the matching stage stores with its vectors."""
    return model_id_for(runtime.config.model)
