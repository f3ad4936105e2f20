"""Semantic search over stored article vectors: an in-memory matrix, refreshed incrementally.

Why a matrix and not SQL: ranking 1,000,000 384-d vectors by cosine is one float32
matrix-vector product (~1.5 GB read, a few hundred ms on one core); no portable SQL does that
in time, and SQLite has no vector type. Vectors are normalised when stored, so cosine is the
dot product.

Why incremental: loading a million blobs from the database takes seconds, so the index is
loaded once and then refreshed *by article id*: each refresh asks for rows with an article id
above the highest one loaded (one range scan of the primary key) and compares the database's
count for the model with the loaded count; only when they differ (an older article was embedded
late, or articles were deleted) does it diff the id lists and fetch just the missing rows.

Where it lives:
- ``monitor serve`` / ``monitor run`` with the API keep one :class:`VectorIndex` in the process
  and refresh it before each search (throttled), so searches cost only the product.
- The CLI is a fresh process each time: it memory-maps a cache saved next to the SQLite file
  (``<db>.vectors/<model>/{ids,vectors,published,lang}.npy``; for PostgreSQL in the config
  folder), refreshes it the same way and rewrites it when it changed. The cache is only a copy:
  deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.config import sqlite_path
from monitor.store.models import Article, Embedding

_FETCH_CHUNK = 5000
_LANG_DTYPE = "<U8"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int((value - _EPOCH).total_seconds())


class VectorIndex:
    """All vectors of one model, with each article's publication time and language for filters."""

    def __init__(
        self,
        model_id: str,
        cache_dir: Path | None = None,
        min_refresh_interval_s: float = 0.0,
        *,
        write_cache: bool = True,
    ) -> None:
        self.model_id = model_id
        self.cache_dir = cache_dir
        self.min_refresh_interval_s = min_refresh_interval_s
        # a long-lived server only reads the cache to start fast; one-shot CLI runs keep it fresh
        self.write_cache = write_cache
        self.ids = np.zeros(0, dtype=np.int64)
        self.published = np.zeros(0, dtype=np.int64)
        self.lang = np.zeros(0, dtype=_LANG_DTYPE)
        self.matrix = np.zeros((0, 0), dtype=np.float32)
        self._lock = threading.Lock()
        self._last_refresh = 0.0
        if cache_dir is not None:
            self._load_cache()

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    # -- cache ---------------------------------------------------------------------------

    def _cache_files(self) -> dict[str, Path]:
        assert self.cache_dir is not None
        return {k: self.cache_dir / f"{k}.npy" for k in ("ids", "vectors", "published", "lang")}

    def _load_cache(self) -> None:
        files = self._cache_files()
        if not all(p.exists() for p in files.values()):
            return
        try:
            ids = np.load(files["ids"])
            vectors = np.load(files["vectors"], mmap_mode="r")
            published = np.load(files["published"])
            lang = np.load(files["lang"])
        except (OSError, ValueError):
            return  # a damaged cache is rebuilt from the database
        if not (len(ids) == len(vectors) == len(published) == len(lang)):
            return
        self.ids, self.matrix, self.published, self.lang = ids, vectors, published, lang

    def _save_cache(self) -> None:
        if self.cache_dir is None:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "ids": self.ids,
            "vectors": np.ascontiguousarray(self.matrix),
            "published": self.published,
            "lang": self.lang,
        }
        for name, path in self._cache_files().items():
            tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, arrays[name])
            os.replace(tmp, path)

    # -- refresh -------------------------------------------------------------------------

    def refresh(self, session: Session, *, force: bool = False) -> int:
        """Bring the index up to date with the database; return how many rows changed."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_refresh < self.min_refresh_interval_s:
                return 0
            changed = self._refresh_locked(session)
            self._last_refresh = time.monotonic()
            if changed and self.write_cache:
                self._save_cache()
            return changed

    def _refresh_locked(self, session: Session) -> int:
        high = int(self.ids[-1]) if len(self) else 0
        added = self._fetch(session, select_after=high)
        self._append(added)
        total = (
            session.scalar(
                select(func.count())
                .select_from(Embedding)
                .where(Embedding.model_id == self.model_id)
            )
            or 0
        )
        changed = len(added[0])
        if total != len(self):
            changed += self._reconcile(session)
        return changed

    def _reconcile(self, session: Session) -> int:
        """Rows embedded out of id order, or deleted: diff the id lists, fetch only what is new."""
        in_db = np.fromiter(
            session.scalars(
                select(Embedding.article_id).where(Embedding.model_id == self.model_id)
            ),
            dtype=np.int64,
        )
        in_db.sort()
        keep = np.isin(self.ids, in_db, assume_unique=True)
        removed = int((~keep).sum())
        if removed:
            self.ids, self.published = self.ids[keep], self.published[keep]
            self.lang, self.matrix = self.lang[keep], np.asarray(self.matrix)[keep]
        missing = np.setdiff1d(in_db, self.ids, assume_unique=True)
        for start in range(0, len(missing), _FETCH_CHUNK):
            chunk = [int(i) for i in missing[start : start + _FETCH_CHUNK]]
            self._append(self._fetch(session, only=chunk))
        if len(missing):
            order = np.argsort(self.ids, kind="stable")
            self.ids, self.published = self.ids[order], self.published[order]
            self.lang, self.matrix = self.lang[order], np.asarray(self.matrix)[order]
        return removed + len(missing)

    def _fetch(
        self, session: Session, *, select_after: int | None = None, only: list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        stmt = (
            select(Embedding.article_id, Embedding.vector, Article.published_at, Article.language)
            .join(Article, Article.id == Embedding.article_id)
            .where(Embedding.model_id == self.model_id)
            .order_by(Embedding.article_id)
        )
        if select_after is not None:
            stmt = stmt.where(Embedding.article_id > select_after)
        if only is not None:
            stmt = stmt.where(Embedding.article_id.in_(only))
        ids: list[int] = []
        blobs: list[bytes] = []
        published: list[int] = []
        langs: list[str] = []
        for article_id, vector, pub, lang in session.execute(stmt).yield_per(_FETCH_CHUNK):
            ids.append(article_id)
            blobs.append(bytes(vector))
            published.append(_epoch(pub))
            langs.append((lang or "")[:8].lower())
        dim = len(blobs[0]) // 4 if blobs else 0
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)
        return (
            np.asarray(ids, dtype=np.int64),
            matrix,
            np.asarray(published, dtype=np.int64),
            np.asarray(langs, dtype=_LANG_DTYPE),
        )

    def _append(self, rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
        ids, matrix, published, lang = rows
        if not len(ids):
            return
        if len(self) == 0:
            self.ids, self.matrix, self.published, self.lang = ids, matrix.copy(), published, lang
            return
        self.ids = np.concatenate([self.ids, ids])
        self.matrix = np.concatenate([np.asarray(self.matrix), matrix])
        self.published = np.concatenate([self.published, published])
        self.lang = np.concatenate([self.lang, lang])

    # -- search --------------------------------------------------------------------------

    def search(
        self,
        query: np.ndarray,
        *,
        limit: int = 20,
        since: datetime | None = None,
        until: datetime | None = None,
        lang: str | None = None,
        min_score: float = -1.0,
    ) -> list[tuple[int, float]]:
        """The ``limit`` most similar articles as (article_id, cosine), best first; none below
        ``min_score``."""
        with self._lock:
            ids, matrix, published, langs = self.ids, self.matrix, self.published, self.lang
        if not len(ids):
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != matrix.shape[1]:
            return []  # a different model's vector: nothing comparable is stored
        scores = _dot(matrix, q)
        mask = np.ones(len(ids), dtype=bool)
        if since is not None:
            mask &= published >= _epoch(since)
        if until is not None:
            mask &= published < _epoch(until)
        if lang:
            mask &= langs == lang.lower()[:8]
        mask &= scores >= min_score
        if not mask.all():
            scores = np.where(mask, scores, -np.inf)
        k = min(limit, int(mask.sum()))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(ids[i]), float(scores[i])) for i in top]


def _dot(matrix: Any, q: np.ndarray) -> np.ndarray:
    """Chunked product so a memory-mapped matrix is streamed rather than copied whole."""
    n = matrix.shape[0]
    step = 262_144
    if n <= step:
        return np.asarray(matrix @ q, dtype=np.float32)
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, step):
        out[start : start + step] = matrix[start : start + step] @ q
    return out


def default_cache_dir(database_url: str, base_dir: Path, model_id: str) -> Path:
    """``<db>.vectors/<model>`` next to a SQLite file; ``<config dir>/.monitor-vectors/...``
    keyed by the URL's hash for PostgreSQL (never containing the password itself)."""
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)[:80]
    path = sqlite_path(database_url)
    if path is not None:
        return Path(path + ".vectors") / slug
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return base_dir / ".monitor-vectors" / digest / slug
