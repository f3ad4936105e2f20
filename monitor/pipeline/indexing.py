"""The search index in the pipeline: which index a process uses, and keeping it up to date.

The matching stage calls :func:`update_after_embedding` once its new vectors are committed, so
the index on disk follows the stored vectors without any store function knowing about it. Search
(:mod:`monitor.search`) calls :func:`sync_for_search` before each query, which reads
whatever other processes committed since (several daemon workers may share one PostgreSQL
database; see :mod:`monitor.store.annindex` for how they share one index folder).
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import SQLAlchemyError

from monitor.logs import event
from monitor.pipeline.runtime import Runtime
from monitor.store import db
from monitor.store.annindex import AnnIndex, Progress, SyncReport, model_folder

log = logging.getLogger(__name__)

SEARCH_SYNC_INTERVAL_S = 1.0  # a server re-reads the database at most this often
# the matching stage builds a missing index only up to this size (seconds of work); a bigger
# one is built by the first search (with a progress bar) or a server's warm-up
STAGE_REBUILD_MAX = 50_000


def search_index(runtime: Runtime, model_id: str) -> AnnIndex | None:
    """This process's view of ``model_id``'s index folder; None when ``search.index_dir = ""``."""
    root = runtime.config.search_index_root()
    if root is None:
        return None
    indexes = runtime.resources.search_indexes
    if model_id not in indexes:
        indexes[model_id] = AnnIndex(
            root / model_folder(model_id), model_id, runtime.config.search.index_dtype
        )
    return indexes[model_id]


def update_after_embedding(runtime: Runtime, model_id: str) -> None:
    """Bring the index up to date after vectors were stored (built when missing or stale and
    at most ``STAGE_REBUILD_MAX`` vectors).

    Never waits for another process's rebuild or save, and never fails the caller: the index
    is a cache, and the next sync (or search) catches up from the database.
    """
    index = search_index(runtime, model_id)
    if index is None:
        return
    started = time.monotonic()
    try:
        with db.session_scope(runtime.sessions) as session:
            report = index.sync(session, wait_for_lock=False, rebuild_max=STAGE_REBUILD_MAX)
    except (OSError, RuntimeError, ValueError, SQLAlchemyError) as exc:
        event(log, logging.WARNING, "search index update failed", error=str(exc))
        return
    _log(report, index, started)


def sync_for_search(
    runtime: Runtime, index: AnnIndex, *, throttle: bool, progress: Progress | None = None
) -> SyncReport:
    """Catch the index up before a search; with ``throttle`` (a long-lived server) at most once
    a second, so a burst of searches reads the database once."""
    synced_at = runtime.resources.search_synced_at
    now = time.monotonic()
    if throttle and now - synced_at.get(index.model_id, -1e9) < SEARCH_SYNC_INTERVAL_S:
        return SyncReport()
    started = time.monotonic()
    with db.session_scope(runtime.sessions) as session:
        report = index.sync(session, progress=progress)
    synced_at[index.model_id] = time.monotonic()
    _log(report, index, started)
    return report


def _log(report: SyncReport, index: AnnIndex, started: float) -> None:
    if report.rebuilt or report.saved:
        event(
            log,
            logging.INFO,
            "search index rebuilt" if report.rebuilt else "search index saved",
            model=index.model_id,
            vectors=len(index),
            seconds=round(time.monotonic() - started, 1),
        )
