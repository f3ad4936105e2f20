"""What stored articles a topic would match: `monitor topics preview` and the web app's
"preview before saving" both score through here.

A topic not saved yet is a :class:`TopicConfig` built from a form; it is scored with the same
embedder, scoring parameters and article texts as the matching stage, so the preview is what
the daemon would decide (minus judgements, which a new topic does not have).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from monitor import scoring
from monitor.config import TopicConfig
from monitor.embed import exemplar_encoder
from monitor.pipeline import matching as stage
from monitor.pipeline.runtime import Runtime
from monitor.store import matches as store

PREVIEW_LIMIT = 50_000


@dataclass(frozen=True)
class StoredArticles:
    """The stored articles of a window with their vectors and full texts, scored per topic."""

    articles: list[Any]
    texts: list[str]
    matrix: np.ndarray


def stored_articles(runtime: Runtime, session: Session, since: datetime) -> StoredArticles:
    """Articles published since ``since`` (newest first, at most PREVIEW_LIMIT), embedded
    now when they have no vector for the current model."""
    articles = store.articles_since(session, since, PREVIEW_LIMIT)
    if not articles:
        return StoredArticles([], [], np.zeros((0, 1), dtype=np.float32))
    embedder = stage.get_embedder(runtime)
    vectors, _ = stage.ensure_vectors(
        session, embedder, articles, runtime.config.model.max_seq_length
    )
    matrix = np.vstack([vectors[a.id] for a in articles])
    return StoredArticles(articles, [stage.full_text(a) for a in articles], matrix)


def score(
    runtime: Runtime, model: scoring.TopicModel, stored: StoredArticles
) -> list[scoring.Verdict]:
    """Every stored article's verdict for one topic model."""
    params = stage.scoring_params(runtime.config)
    return scoring.score_many(model, stored.texts, stored.matrix, params)


def build_unsaved(runtime: Runtime, spec: TopicConfig) -> scoring.TopicModel:
    """The scoring model of a topic that is not in the config (yet)."""
    embedder = stage.get_embedder(runtime)
    return scoring.build_topic(
        spec,
        exemplar_encoder(embedder),
        base_dir=runtime.config.base_dir,
        params=stage.scoring_params(runtime.config),
    )


@dataclass(frozen=True)
class Preview:
    """How many of ``window`` stored articles would match, the best of them, every score."""

    window: int
    hits: list[dict[str, Any]]
    matched: int
    scores: list[float]
    threshold: float


def preview_unsaved(
    runtime: Runtime, session: Session, spec: TopicConfig, since: datetime, sample: int = 10
) -> Preview:
    stored = stored_articles(runtime, session, since)
    if not stored.articles:
        return Preview(0, [], 0, [], spec.threshold)
    verdicts = score(runtime, build_unsaved(runtime, spec), stored)
    order = sorted(
        (i for i, v in enumerate(verdicts) if v.matched), key=lambda i: -verdicts[i].score
    )
    hits = [
        {
            "article_id": stored.articles[i].id,
            "title": stored.articles[i].title,
            "link": stored.articles[i].link,
            "published": stored.articles[i].published_at,
            "score": round(float(verdicts[i].score), 4),
            "passage": verdicts[i].explanation.passage,
        }
        for i in order[:sample]
    ]
    scores = [float(v.score) for v in verdicts if np.isfinite(v.score)]
    return Preview(len(stored.articles), hits, len(order), scores, spec.threshold)
