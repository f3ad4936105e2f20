"""Calibration on labeled items: embed once, score every topic, report figures.

Used by ``monitor eval`` and the bench scripts. An item is predicted relevant when ANY configured
topic matches it. Figures are given at the configured thresholds and at the best common shift of
the thresholds (``best_offset``), overall and per language.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor import scoring
from monitor.config import Config, TopicConfig
from monitor.embed import PASSAGE, Embedder, article_text, exemplar_encoder
from monitor.errors import ConfigError, MonitorError

Progress = Callable[[int], None]


@dataclass(frozen=True)
class LabeledItem:
    """One line of an eval file."""

    title: str
    text: str
    lang: str
    relevant: bool


def read_labeled(path: Path) -> list[LabeledItem]:
    """Read a JSONL file of items with ``title``, ``text``, ``lang``, ``relevant``."""
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise MonitorError(f"{path}: cannot read: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            items.append(
                LabeledItem(
                    str(row.get("title", "")),
                    str(row.get("text", "")),
                    str(row.get("lang", "") or "?"),
                    bool(row["relevant"]),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise MonitorError(f"{path}:{number}: not a labeled item ({exc})") from None
    if not items:
        raise MonitorError(f"{path}: no labeled items")
    return items


def build_topics(
    config: Config,
    embedder: Embedder,
    topics: Sequence[TopicConfig] | None = None,
    feedback: dict[str, list[scoring.FeedbackExample]] | None = None,
    params: scoring.ScoringParams = scoring.DEFAULT_PARAMS,
) -> list[scoring.TopicModel]:
    """Topic models for the configured topics (optionally with feedback exemplars)."""
    specs = list(config.topics if topics is None else topics)
    if not specs:
        raise ConfigError(f"{config.path}: no [[topics]] configured")
    feedback = feedback or {}
    return [
        scoring.build_topic(
            t,
            exemplar_encoder(embedder),
            base_dir=config.base_dir,
            feedback=feedback.get(t.name, ()),
            params=params,
        )
        for t in specs
    ]


def embed_items(
    embedder: Embedder,
    items: Sequence[LabeledItem],
    max_seq_length: int,
    progress: Progress | None = None,
    chunk: int = 256,
) -> np.ndarray:
    """Embed items' title + lead in chunks, reporting progress after each chunk."""
    texts = [article_text(i.title, i.text, max_seq_length) for i in items]
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(embedder.encode(texts[start : start + chunk], kind=PASSAGE))
        if progress:
            progress(len(parts[-1]))
    return np.vstack(parts) if parts else np.zeros((0, embedder.dim), dtype=np.float32)


@dataclass
class EvalResult:
    """Margins per item (best score minus threshold over topics) and the figures they give."""

    margins: np.ndarray
    truth: np.ndarray
    langs: list[str]
    offset: float = 0.0
    thresholds: dict[str, float] = field(default_factory=dict)

    def at(self, offset: float) -> dict[str, Any]:
        predicted = self.margins >= offset
        out: dict[str, Any] = scoring.figures(predicted, self.truth).as_dict()
        per_language = {}
        for lang in sorted(set(self.langs)):
            mask = np.array([x == lang for x in self.langs])
            per_language[lang] = scoring.figures(predicted[mask], self.truth[mask]).as_dict()
        out["per_language"] = per_language
        return out

    def report(self) -> dict[str, Any]:
        """The JSON printed by ``monitor eval --format json``."""
        configured = self.at(0.0)
        best = self.at(self.offset)
        shared = set(self.thresholds.values())
        absolute = {name: round(t + self.offset, 4) for name, t in self.thresholds.items()}
        result = dict(configured)
        result.update(
            thresholds=self.thresholds,
            best_threshold=(
                round(next(iter(shared)) + self.offset, 4)
                if len(shared) == 1
                else round(self.offset, 4)
            ),
            best_threshold_offset=round(self.offset, 4),
            best_thresholds=absolute,
            at_best_threshold=best,
        )
        return result


def evaluate(
    topics: Sequence[scoring.TopicModel],
    items: Sequence[LabeledItem],
    vectors: np.ndarray,
    params: scoring.ScoringParams = scoring.DEFAULT_PARAMS,
) -> EvalResult:
    """Score every item against every topic; an item is relevant when any topic matches."""
    texts = [f"{i.title}\n{i.text}" for i in items]
    margins = np.full(len(items), -np.inf)
    for topic in topics:
        verdicts = scoring.score_many(topic, texts, vectors, params)
        scores = np.array([v.score for v in verdicts]) - topic.threshold
        margins = np.maximum(margins, scores)
    truth = np.array([i.relevant for i in items], dtype=bool)
    result = EvalResult(
        margins, truth, [i.lang for i in items], thresholds={t.name: t.threshold for t in topics}
    )
    result.offset = scoring.best_offset(margins, truth)
    return result
