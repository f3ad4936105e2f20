"""Pure scoring of articles against topics, with explanations.

A topic is a set of *exemplar* vectors (passages of its seed articles, the whole-seed vector,
its descriptions, positive examples, articles a user judged relevant), a set of *negative*
exemplars (negative examples, articles judged irrelevant), ``require`` alias groups and
``exclude`` aliases. Scoring one article:

1. semantic = best cosine similarity over the positive exemplars, pulled down when a negative
   exemplar comes near it (within ``negative_margin`` of the best positive);
2. lexical evidence = which ``require`` groups have an alias in the text (every group must);
3. score = semantic + a bonus when every group matched. A missing group or an ``exclude`` alias
   is a veto: no match, and the score drops far below any threshold (so ``monitor eval`` ranks
   vetoed items last). Otherwise the score is compared with the topic's threshold.

Aliases match case- and accent-insensitively, on word boundaries in any script (``Rusia`` does
not match inside ``Prusia``; ``북한`` does not match inside ``남북한``); an alias ending in ``*``
matches any word that starts with it (``rosj*`` matches ``Rosji``, ``Rosją``). Multi-word aliases
match across spaces or hyphens (``kim jong un`` matches ``Kim Jong-un``).

No database and no model here: the caller passes vectors, or an ``encode`` callable to turn
exemplar texts into vectors. numpy is the only third-party import.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from monitor.config import TopicConfig
from monitor.domain import Explanation

Encode = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class ScoringParams:
    """How semantic and lexical evidence combine; the defaults are what the shipped config is
    tuned with (see notes/match.md for the figures)."""

    # every require group matched: the article names both sides of the story
    lexical_bonus: float = 0.15
    # a missing require group: a veto (the README's "every group must match"); the score sinks
    # below any threshold so calibration ranks the item last
    missing_penalty: float = 2.0
    # an exclude alias: a veto
    exclude_penalty: float = 2.0
    # how strongly a near negative exemplar pulls the semantic score down
    negative_weight: float = 1.0
    # a negative starts pulling once its similarity exceeds (best positive + margin); a negative
    # margin makes the score contrastive: with all-MiniLM-L6-v2 every Polish text is somewhat
    # similar to every other, and near negatives in the same language cancel that bias
    negative_margin: float = -0.3
    # the whole seed article (the mean of its passages) as one more exemplar
    whole_seed: bool = True
    # ignore require/exclude (semantic only: `monitor eval --no-require`)
    use_require: bool = True


DEFAULT_PARAMS = ScoringParams()
# For E5 models (multilingual-e5-small). Their cosines are compressed into about 0.7-1, so the
# -0.3 margin above would let every negative pull; a margin of -0.01 (the middle of the flat
# range -0.02..0 on dev) pulls only when a negative comes about as near as the best positive.
# The whole-seed centroid is dropped: in E5's space the mean of a long article's passages is
# near everything about either country (dev, semantic only: F1 0.925 with it, 0.939 without).
E5_PARAMS = ScoringParams(negative_margin=-0.01, whole_seed=False)


def params_for(e5_model: bool, *, use_require: bool = True) -> ScoringParams:
    """The scoring parameters the shipped config is tuned with, for the model family in use."""
    base = E5_PARAMS if e5_model else DEFAULT_PARAMS
    return replace(base, use_require=use_require)


# ----------------------------------------------------------------------------------------------
# Text normalisation and alias matching

# letters that carry no combining mark in NFKD but users type without their stroke
_FOLD = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ı": "i", "æ": "ae", "œ": "oe"})
_SEPARATOR = r"[\W_]+"


@lru_cache(maxsize=1024)
def normalize(text: str) -> str:
    """Casefold and strip accents, keeping letters of every script intact.

    Cached: the matching stage normalises each article once per topic, with the same string.
    NFKD splits accented letters into base + combining mark; the marks are dropped and NFC
    recomposes what is left (so Hangul syllables come back whole, and ``й`` becomes ``и``).
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_FOLD))
    stripped = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return unicodedata.normalize("NFC", stripped).translate(_FOLD)


@lru_cache(maxsize=4096)
def alias_pattern(alias: str) -> re.Pattern[str] | None:
    """The regex for one alias, matched against :func:`normalize`-d text.

    Words of a multi-word alias may be separated by any run of non-letters; the alias must start
    and end on a word boundary. A word ending in ``*`` is a prefix (``kore* północn*`` matches
    ``Koreą Północną``), so one alias covers the inflected forms.
    """
    tokens = [t for t in re.split(r"[^\w*]+", normalize(alias.strip())) if t.strip("*")]
    if not tokens:
        return None
    pieces = [re.escape(t.rstrip("*")) + (r"\w*" if t.endswith("*") else "") for t in tokens]
    tail = "" if tokens[-1].endswith("*") else r"(?!\w)"
    return re.compile(rf"(?<!\w){_SEPARATOR.join(pieces)}{tail}")


@dataclass(frozen=True)
class AliasGroup:
    """Names of one thing; any of them is evidence for it."""

    aliases: tuple[str, ...]

    def find(self, normalized_text: str) -> list[str]:
        """The aliases (as written in config) found in already-normalised text."""
        found = []
        for alias in self.aliases:
            pattern = alias_pattern(alias)
            if pattern is not None and pattern.search(normalized_text):
                found.append(alias)
        return found


def find_aliases(aliases: Sequence[str], text: str) -> list[str]:
    """Which of ``aliases`` occur in ``text`` (convenience for callers and tests)."""
    return AliasGroup(tuple(aliases)).find(normalize(text))


# ----------------------------------------------------------------------------------------------
# Passages

_SENTENCE_END = re.compile(r"(?<=[.!?…。])[\"”’»)]*\s+")
MIN_PASSAGE_CHARS = 40
HEADING_MAX_CHARS = 80
WINDOW_SENTENCES = 2


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph, split after ., !, ? or … followed by space."""
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def split_passages(text: str) -> list[str]:
    """Exemplar passages of an article: its paragraphs, plus windows of two sentences.

    A short line without closing punctuation is a heading: it is joined to the paragraph that
    follows, since on its own it says little. Passages shorter than ``MIN_PASSAGE_CHARS`` are
    dropped (datelines, "Read also", quotes' attributions).
    """
    paragraphs: list[str] = []
    heading = ""
    for line in (ln.strip() for ln in text.splitlines()):
        if not line:
            continue
        if len(line) <= HEADING_MAX_CHARS and not line.endswith((".", "!", "?", "…", "”", '"')):
            heading = f"{heading} {line}".strip()
            continue
        paragraphs.append(f"{heading}. {line}" if heading else line)
        heading = ""
    if heading:
        paragraphs.append(heading)
    passages: list[str] = []
    for paragraph in paragraphs:
        passages.append(paragraph)
        sentences = split_sentences(paragraph)
        if len(sentences) > WINDOW_SENTENCES:
            for i in range(len(sentences) - WINDOW_SENTENCES + 1):
                passages.append(" ".join(sentences[i : i + WINDOW_SENTENCES]))
    unique = dict.fromkeys(p for p in passages if len(p) >= MIN_PASSAGE_CHARS)
    return list(unique)


# ----------------------------------------------------------------------------------------------
# Topics


@dataclass(frozen=True)
class Exemplar:
    """One text a topic is compared with; ``source`` says where it came from."""

    text: str
    source: str


@dataclass
class TopicModel:
    """A topic ready to score vectors: exemplar matrices and compiled alias groups."""

    name: str
    threshold: float
    positives: list[Exemplar]
    positive_vectors: np.ndarray
    negatives: list[Exemplar] = field(default_factory=list)
    negative_vectors: np.ndarray | None = None
    require: tuple[AliasGroup, ...] = ()
    exclude: AliasGroup | None = None


@dataclass(frozen=True)
class FeedbackExample:
    """A judged article: its text (for the explanation) and its stored vector."""

    text: str
    vector: np.ndarray
    relevant: bool


def topic_exemplars(
    spec: TopicConfig, base_dir: Path | None = None
) -> tuple[list[Exemplar], list[Exemplar]]:
    """Positive and negative exemplar texts of a topic, before embedding.

    Seed passages (labelled ``seed:<file>``), the whole seed (``seed-article:<file>``, embedded
    as the mean of its passages), descriptions, positive and negative examples.
    """
    positives: list[Exemplar] = []
    for seed in spec.seed:
        path = seed if base_dir is None or seed.is_absolute() else base_dir / seed
        text = path.read_text(encoding="utf-8")
        positives += [Exemplar(p, f"seed:{seed.name}") for p in split_passages(text)]
    positives += [Exemplar(d, "description") for d in spec.descriptions]
    positives += [Exemplar(t, "positive_example") for t in spec.positive_examples]
    negatives = [Exemplar(t, "negative_example") for t in spec.negative_examples]
    return positives, negatives


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    unit: np.ndarray = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def build_topic(
    spec: TopicConfig,
    encode: Encode,
    *,
    base_dir: Path | None = None,
    feedback: Sequence[FeedbackExample] = (),
    params: ScoringParams = DEFAULT_PARAMS,
) -> TopicModel:
    """Embed a topic's exemplars and compile its aliases.

    Each seed file also contributes its whole-article vector (the normalised mean of its
    passages), which catches articles that retell the story as a whole, unless
    ``params.whole_seed`` is off (E5 models). Judged articles join
    the positives or the negatives with the vector they were stored with.
    """
    positives, negatives = topic_exemplars(spec, base_dir)
    texts = [e.text for e in positives] + [e.text for e in negatives]
    vectors = encode(texts) if texts else np.zeros((0, 0), dtype=np.float32)
    pos_vecs = vectors[: len(positives)]
    neg_vecs = vectors[len(positives) :]
    if params.whole_seed:
        extra_pos, extra_pos_vecs = _whole_seed_vectors(positives, pos_vecs)
        positives, pos_vecs = positives + extra_pos, _stack(pos_vecs, extra_pos_vecs)
    for item in feedback:
        ex = Exemplar(item.text, "feedback:relevant" if item.relevant else "feedback:irrelevant")
        if item.relevant:
            positives.append(ex)
            pos_vecs = _stack(pos_vecs, item.vector[None, :])
        else:
            negatives.append(ex)
            neg_vecs = _stack(neg_vecs, item.vector[None, :])
    return TopicModel(
        name=spec.name,
        threshold=spec.threshold,
        positives=positives,
        positive_vectors=_unit(pos_vecs),
        negatives=negatives,
        negative_vectors=_unit(neg_vecs) if len(negatives) else None,
        require=tuple(AliasGroup(tuple(g)) for g in spec.require if g),
        exclude=AliasGroup(tuple(spec.exclude)) if spec.exclude else None,
    )


def _stack(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.size == 0:
        return np.asarray(b, dtype=np.float32)
    if b.size == 0:
        return a
    return np.vstack([a, b]).astype(np.float32)


def _whole_seed_vectors(
    positives: list[Exemplar], vectors: np.ndarray
) -> tuple[list[Exemplar], np.ndarray]:
    sources = sorted({e.source for e in positives if e.source.startswith("seed:")})
    exemplars, rows = [], []
    for source in sources:
        idx = [i for i, e in enumerate(positives) if e.source == source]
        rows.append(vectors[idx].mean(axis=0))
        first = positives[idx[0]].text
        exemplars.append(Exemplar(first, "seed-article:" + source.split(":", 1)[1]))
    if not rows:
        return [], np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0), dtype=np.float32)
    return exemplars, _unit(np.vstack(rows))


# ----------------------------------------------------------------------------------------------
# Scoring


@dataclass(frozen=True)
class Verdict:
    """One topic's decision on one article."""

    topic: str
    score: float
    matched: bool
    explanation: Explanation


def semantic_scores(
    topic: TopicModel, vectors: np.ndarray, params: ScoringParams = DEFAULT_PARAMS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For many article vectors at once: (semantic score, best positive index, best positive sim).

    The negative pull: when the closest negative exemplar's similarity exceeds the best positive
    one plus ``negative_margin``, the score drops by ``negative_weight`` times the excess.
    """
    sims = vectors @ topic.positive_vectors.T
    best_idx = sims.argmax(axis=1)
    best = sims[np.arange(len(vectors)), best_idx]
    score = best.copy()
    if topic.negative_vectors is not None and len(topic.negative_vectors):
        neg = (vectors @ topic.negative_vectors.T).max(axis=1)
        gap = np.maximum(0.0, neg - best - params.negative_margin)
        score = score - params.negative_weight * gap
    return score, best_idx, best


@dataclass(frozen=True)
class Lexical:
    """What the aliases say about one text: the score adjustment, the aliases found, the
    ``require`` groups with no alias in the text (each by its aliases) and the exclude alias
    found. A missing group or an exclude alias is a veto."""

    adjustment: float = 0.0
    aliases: tuple[str, ...] = ()
    missing: tuple[tuple[str, ...], ...] = ()
    excluded_by: str = ""

    @property
    def vetoed(self) -> bool:
        return bool(self.missing or self.excluded_by)


def lexical_adjustment(
    topic: TopicModel, text: str, params: ScoringParams = DEFAULT_PARAMS
) -> Lexical:
    """The lexical evidence of ``text`` for ``topic`` (nothing when ``use_require`` is off)."""
    if not params.use_require:
        return Lexical()
    normalized = normalize(text)
    if topic.exclude is not None:
        vetoes = topic.exclude.find(normalized)
        if vetoes:
            return Lexical(-params.exclude_penalty, excluded_by=vetoes[0])
    found: list[str] = []
    missing: list[tuple[str, ...]] = []
    for group in topic.require:
        hits = group.find(normalized)
        found += hits
        if not hits:
            missing.append(group.aliases)
    if missing:
        return Lexical(-params.missing_penalty, tuple(found), tuple(missing))
    bonus = params.lexical_bonus if topic.require else 0.0
    return Lexical(bonus, tuple(found))


def can_match(topic: TopicModel, text: str, params: ScoringParams = DEFAULT_PARAMS) -> bool:
    """False when the aliases alone rule ``text`` out for ``topic`` (a missing ``require`` group
    or an ``exclude`` alias): no similarity can overturn a veto, so the matching stage need not
    embed such an article before deciding it (its vector is made later, for search)."""
    return not lexical_adjustment(topic, text, params).vetoed


def group_label(aliases: Sequence[str], shown: int = 3) -> str:
    """A require group as users recognise it: its first aliases, then "…" when there are more."""
    head = " / ".join(aliases[:shown])
    return head + (" / …" if len(aliases) > shown else "")


def score_many(
    topic: TopicModel,
    texts: Sequence[str],
    vectors: np.ndarray,
    params: ScoringParams = DEFAULT_PARAMS,
) -> list[Verdict]:
    """Score articles (their full text for aliases, their vectors for meaning) against a topic."""
    if len(texts) == 0:
        return []
    semantic, best_idx, best = semantic_scores(topic, np.asarray(vectors, dtype=np.float32), params)
    verdicts = []
    for i, text in enumerate(texts):
        lexical = lexical_adjustment(topic, text, params)
        final = float(semantic[i]) + lexical.adjustment
        exemplar = topic.positives[int(best_idx[i])]
        notes = [f"passage similarity {best[i]:.3f}"]
        if semantic[i] < best[i] - 1e-6:
            notes.append(f"pulled down by a negative exemplar: -{best[i] - semantic[i]:.3f}")
        notes += [f"require group missing: {group_label(g)}" for g in lexical.missing]
        explanation = Explanation(
            score=round(final, 4),
            semantic=round(float(semantic[i]), 4),
            passage=exemplar.text,
            passage_source=exemplar.source,
            aliases=lexical.aliases,
            missing_groups=lexical.missing,
            excluded_by=lexical.excluded_by,
            notes=tuple(notes),
        )
        matched = final >= topic.threshold and not lexical.vetoed
        verdicts.append(Verdict(topic.name, final, matched, explanation))
    return verdicts


def score_one(
    topic: TopicModel, text: str, vector: np.ndarray, params: ScoringParams = DEFAULT_PARAMS
) -> Verdict:
    """Score a single article."""
    return score_many(topic, [text], np.asarray(vector)[None, :], params)[0]


def explanation_dict(explanation: Explanation) -> dict[str, object]:
    """The JSON stored in ``matches.explanation`` and shown by commands and the API."""
    return {
        "score": explanation.score,
        "semantic": explanation.semantic,
        "passage": explanation.passage,
        "passage_source": explanation.passage_source,
        "aliases": list(explanation.aliases),
        "missing_groups": [list(group) for group in explanation.missing_groups],
        "excluded_by": explanation.excluded_by,
        "notes": list(explanation.notes),
    }


# ----------------------------------------------------------------------------------------------
# Calibration figures (`monitor eval`)

# TDT cost: C_det = C_miss*P_miss*P_target + C_fa*P_fa*(1-P_target), normalised by
# min(C_miss*P_target, C_fa*(1-P_target)) = 0.02 -> C_det_norm = P_miss + 4.9*P_fa
C_MISS, C_FA, P_TARGET = 1.0, 0.1, 0.02
FA_WEIGHT = C_FA * (1 - P_TARGET) / (C_MISS * P_TARGET)


@dataclass(frozen=True)
class Figures:
    """Precision, recall, F1 and TDT cost of one set of decisions."""

    n: int
    relevant: int
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def p_miss(self) -> float:
        return self.fn / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def p_fa(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def c_det_norm(self) -> float:
        return self.p_miss + FA_WEIGHT * self.p_fa

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "c_det_norm": round(self.c_det_norm, 4),
            "n": self.n,
            "relevant": self.relevant,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
        }


def figures(predicted: Sequence[bool] | np.ndarray, truth: Sequence[bool] | np.ndarray) -> Figures:
    """Confusion counts of predictions against labels."""
    p = np.asarray(predicted, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    tp = int((p & t).sum())
    fp = int((p & ~t).sum())
    fn = int((~p & t).sum())
    return Figures(n=len(t), relevant=int(t.sum()), tp=tp, fp=fp, fn=fn, tn=len(t) - tp - fp - fn)


def best_offset(margins: np.ndarray, truth: np.ndarray) -> float:
    """The shift of every topic's threshold that maximises F1 (ties: lower C_det_norm).

    ``margins`` is, per item, the best of (score - threshold) over topics, so an item is
    predicted relevant at offset ``d`` when its margin >= d. Candidates are midpoints between
    consecutive distinct margins.
    """
    values = np.unique(margins)
    if len(values) == 0:
        return 0.0
    candidates = np.concatenate(
        [[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]]
    )
    best_key: tuple[float, float] | None = None
    best = 0.0
    for c in candidates:
        fig = figures(margins >= c, truth)
        key = (round(fig.f1, 9), -fig.c_det_norm)
        if best_key is None or key > best_key:
            best_key, best = key, float(c)
    return best
