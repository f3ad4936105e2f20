"""Why does the matcher alert on what it alerts? Alert figures of a labeled stream, no daemon.

    python bench/alert_analysis.py --stream ../shared/stream/2023-09.jsonl.gz \\
        --labels ../shared/stream/2023-09.labels.json --eval ../shared/eval/dev.jsonl \\
        --cache /tmp/analysis-cache

A replay takes an hour of a shared machine; most of it is embedding articles that can never
alert because a ``require`` group is missing. This script applies the topics' cheap text checks
first with monitor's own scoring code (``monitor.scoring.lexical_adjustment``: require groups,
exclude), embeds only the entries that pass them for some topic (the passage side, the text the
matching stage embeds), scores them with ``monitor.scoring.score_many`` and prints, at the
configured thresholds and at shifts around them:

- precision, recall and false alerts per simulated day of the matched articles against the
  stream's labels (``unjudged`` links are left out of the false counts, as in bench/replay.py),
  overall and per language;
- with ``--eval``: the dev-set figures ``monitor eval`` prints (hybrid and semantic only), so a
  change can be judged on both sets in one run;
- the false alerts at the configured thresholds, by link, feed, language, day and score (no
  article text).

Figures are per article, before story grouping (a replay counts an alert per story). Vectors are
cached under ``--cache`` (keyed by model id, side and text), so trying another setting with
``--param`` (a ``ScoringParams`` field, e.g. ``negative_margin=-0.02``) or ``--threshold``
embeds nothing new.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from monitor import evaluate as ev
from monitor import scoring
from monitor.config import load_config
from monitor.embed import PASSAGE, Embedder, Kind, article_text, load_embedder
from monitor.pipeline.matching import scoring_params

REPO_ROOT = Path(__file__).resolve().parent.parent


class CachedEncoder:
    """``embedder.encode`` with a disk cache keyed by (model id, side, text)."""

    def __init__(self, embedder: Embedder, folder: Path | None) -> None:
        self.embedder = embedder
        self.path = None
        self.vectors: dict[str, np.ndarray] = {}
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha1(embedder.model_id.encode(), usedforsecurity=False).hexdigest()[:12]
            self.path = folder / f"vectors-{name}.npz"
            if self.path.exists():
                with np.load(self.path) as data:
                    self.vectors = dict(zip(data["keys"].tolist(), data["matrix"], strict=True))
        self.new = 0

    def encode(self, texts: Sequence[str], *, kind: Kind) -> np.ndarray:
        keys = [
            hashlib.sha1(f"{kind}\0{t}".encode(), usedforsecurity=False).hexdigest() for t in texts
        ]
        todo = sorted(
            {k: t for k, t in zip(keys, texts, strict=True) if k not in self.vectors}.items()
        )
        step = 256
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            out = self.embedder.encode([t for _, t in chunk], kind=kind)
            self.vectors.update({k: v for (k, _), v in zip(chunk, out, strict=True)})
            self.new += len(chunk)
            print(f"  embedded {self.new} new texts", file=sys.stderr, flush=True)
            if self.new % 1024 < step:
                self.save()
        dim = self.embedder.dim
        return np.vstack([self.vectors[k] for k in keys]) if keys else np.zeros((0, dim))

    def save(self) -> None:
        if self.path is None or not self.vectors:
            return
        keys = sorted(self.vectors)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), matrix=np.vstack([self.vectors[k] for k in keys]))
        tmp.replace(self.path)


class CachedEmbedder:
    """An ``Embedder`` over a :class:`CachedEncoder`, for monitor's own functions."""

    def __init__(self, cache: CachedEncoder) -> None:
        self.cache = cache
        self.model_id = cache.embedder.model_id
        self.dim = cache.embedder.dim

    def encode(self, texts: Sequence[str], *, kind: Kind) -> np.ndarray:
        return self.cache.encode(texts, kind=kind)


@dataclass
class Entry:
    link: str
    feed: str
    lang: str
    day: str
    when: datetime
    title: str
    summary: str


def read_stream(path: Path) -> list[Entry]:
    """Stream entries, one per link (the first seen), in publication order."""
    seen: dict[str, Entry] = {}
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            if row["link"] in seen:
                continue
            when = datetime.fromisoformat(row["published"])
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            seen[row["link"]] = Entry(
                row["link"],
                row["feed"],
                row.get("lang") or "?",
                f"{when:%m-%d}",
                when,
                row.get("title") or "",
                row.get("summary") or "",
            )
    return sorted(seen.values(), key=lambda e: e.when)


@dataclass
class Scored:
    margin: np.ndarray  # best (score - threshold) over topics, per candidate
    topic: list[str]  # the topic giving that margin
    verdicts: list[scoring.Verdict]


def score_entries(
    topics: list[scoring.TopicModel],
    texts: list[str],
    vectors: np.ndarray,
    params: scoring.ScoringParams,
) -> Scored:
    margin = np.full(len(texts), -np.inf)
    best_topic = [""] * len(texts)
    best_verdict: list[scoring.Verdict | None] = [None] * len(texts)
    for topic in topics:
        for i, verdict in enumerate(scoring.score_many(topic, texts, vectors, params)):
            m = verdict.score - topic.threshold
            if m > margin[i]:
                margin[i], best_topic[i], best_verdict[i] = m, topic.name, verdict
    return Scored(margin, best_topic, [v for v in best_verdict if v is not None])


def stream_figures(
    predicted: np.ndarray, positive: np.ndarray, unjudged: np.ndarray, n_pos: int, days: float
) -> dict[str, Any]:
    tp = int((predicted & positive).sum())
    fp = int((predicted & ~positive & ~unjudged).sum())
    return {
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall": round(tp / n_pos, 3) if n_pos else None,
        "tp": tp,
        "fp": fp,
        "positives": n_pos,
        "false_per_day": round(fp / days, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream", required=True, type=Path, help="PATH.jsonl.gz")
    parser.add_argument("--labels", required=True, type=Path, help="PATH.json")
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "config.toml")
    parser.add_argument("--eval", type=Path, default=None, help="a labeled JSONL (dev.jsonl)")
    parser.add_argument("--cache", type=Path, default=None, help="folder for cached vectors")
    parser.add_argument(
        "--param", action="append", default=[], help="ScoringParams override, NAME=VALUE"
    )
    parser.add_argument(
        "--threshold", type=float, default=None, help="every topic's threshold set to this"
    )
    parser.add_argument(
        "--offsets",
        default="-0.03,-0.02,-0.01,-0.005,0,0.005,0.01,0.02,0.03",
        help="threshold shifts to print figures at",
    )
    parser.add_argument("--days", type=float, default=None, help="only the stream's first N days")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    args = parser.parse_args(argv)

    cfg = load_config(args.config)
    params = scoring_params(cfg)
    kinds = {f.name: f.type for f in fields(scoring.ScoringParams)}
    for item in args.param:
        name, _, value = item.partition("=")
        if name not in kinds:
            parser.error(f"--param {item}: no ScoringParams field {name!r}")
        params = replace(
            params, **{name: value == "true" if "bool" in str(kinds[name]) else float(value)}
        )
    specs = list(cfg.topics)
    if args.threshold is not None:
        specs = [t.model_copy(update={"threshold": args.threshold}) for t in specs]
    cache = CachedEncoder(load_embedder(cfg.model), args.cache)
    embedder = CachedEmbedder(cache)
    out: dict[str, Any] = {"params": {f.name: getattr(params, f.name) for f in fields(params)}}
    try:
        topics = ev.build_topics(cfg, embedder, specs, params=params)
        out["stream"] = analyse_stream(args, cfg, topics, embedder, params)
        if args.eval is not None:
            out["eval"] = analyse_eval(args, cfg, specs, embedder, params)
    finally:
        cache.save()
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def analyse_stream(
    args: argparse.Namespace,
    cfg: Any,
    topics: list[scoring.TopicModel],
    embedder: CachedEmbedder,
    params: scoring.ScoringParams,
) -> dict[str, Any]:
    entries = read_stream(args.stream)
    if args.days is not None:
        start = entries[0].when
        entries = [e for e in entries if (e.when - start).total_seconds() < args.days * 86400]
    labels = json.loads(args.labels.read_text(encoding="utf-8"))
    positive_links = set(labels.get("positive", []))
    unjudged_links = set(labels.get("unjudged", []))
    days = (
        max(e.when for e in entries) - min(e.when for e in entries)
    ).total_seconds() / 86400 or 1
    texts = [f"{e.title}\n{e.summary}" for e in entries]  # what aliases are searched in
    passes = [
        any(not scoring.lexical_adjustment(t, text, params).vetoed for t in topics)
        for text in texts
    ]
    cand = [i for i, ok in enumerate(passes) if ok]
    print(
        f"stream: {len(entries)} entries over {days:.1f} days; {len(cand)} pass a topic's "
        f"require/exclude (embedded); {sum(e.link in positive_links for e in entries)} positives",
        flush=True,
    )
    vectors = embedder.encode(
        [
            article_text(entries[i].title, entries[i].summary, cfg.model.max_seq_length)
            for i in cand
        ],
        kind=PASSAGE,
    )
    scored = score_entries(topics, [texts[i] for i in cand], vectors, params)
    ce = [entries[i] for i in cand]
    positive = np.array([e.link in positive_links for e in ce], dtype=bool)
    unjudged = np.array([e.link in unjudged_links for e in ce], dtype=bool)
    n_pos_all = sum(e.link in positive_links for e in entries)
    n_pos_lang = Counter(e.lang for e in entries if e.link in positive_links)
    result: dict[str, Any] = {"entries": len(entries), "candidates": len(cand), "days": days}
    print(
        f"\n{'shift':>7} {'prec':>6} {'recall':>6} {'tp':>4} {'fp':>4} {'fp/day':>6}   per language"
    )
    by_offset = {}
    for offset in [float(x) for x in args.offsets.split(",")]:
        predicted = scored.margin >= offset
        overall = stream_figures(predicted, positive, unjudged, n_pos_all, days)
        langs = {}
        for lang in sorted(n_pos_lang | Counter(e.lang for e in ce)):
            mask = np.array([e.lang == lang for e in ce])
            langs[lang] = stream_figures(
                predicted & mask, positive & mask, unjudged & mask, n_pos_lang[lang], days
            )
        by_offset[offset] = {"all": overall, "per_language": langs}
        per = "  ".join(
            f"{k} p={v['precision']} r={v['recall']} fp={v['fp']}"
            for k, v in langs.items()
            if v["tp"] or v["fp"] or v["positives"]
        )
        print(
            f"{offset:+7.3f} {overall['precision']!s:>6} {overall['recall']!s:>6} "
            f"{overall['tp']:4d} {overall['fp']:4d} {overall['false_per_day']:6.3f}   {per}"
        )
    result["by_offset"] = by_offset

    false = [
        i for i in range(len(ce)) if scored.margin[i] >= 0 and not positive[i] and not unjudged[i]
    ]
    missed = [i for i in range(len(ce)) if positive[i] and scored.margin[i] < 0]
    print(f"\nfalse alerts at the configured thresholds ({len(false)}):")
    rows = []
    for i in sorted(false, key=lambda i: ce[i].day):
        v = scored.verdicts[i]
        ex = v.explanation
        row = {
            "day": ce[i].day,
            "lang": ce[i].lang,
            "feed": ce[i].feed,
            "link": ce[i].link,
            "topic": scored.topic[i],
            "margin": round(float(scored.margin[i]), 3),
            "semantic": ex.semantic,
            "passage_source": ex.passage_source,
            "pulled_down": round(float(ex.semantic) - _best_sim(ex.notes), 3),
        }
        rows.append(row)
        print(
            f"  {row['day']} {row['lang']} margin {row['margin']:+.3f} sem {row['semantic']:.3f} "
            f"{row['passage_source']:18.18s} {row['feed'][:40]:40s} {row['link']}"
        )
    print(
        f"\npositives that pass require but score below threshold: {len(missed)}; "
        f"positives failing require: {n_pos_all - int(positive.sum())}"
    )
    sources = Counter(scored.verdicts[i].explanation.passage_source for i in false)
    feeds = Counter(ce[i].feed for i in false)
    print(f"false by nearest exemplar kind: {dict(sources)}")
    print(f"false by feed: {dict(feeds.most_common(8))}")
    result["false"] = rows
    result["missed"] = [
        {
            "day": ce[i].day,
            "lang": ce[i].lang,
            "link": ce[i].link,
            "margin": round(float(scored.margin[i]), 3),
        }
        for i in missed
    ]
    return result


def _best_sim(notes: Sequence[str]) -> float:
    for note in notes:
        if note.startswith("passage similarity"):
            return float(note.rsplit(" ", 1)[1])
    return float("nan")


def analyse_eval(
    args: argparse.Namespace,
    cfg: Any,
    specs: list[Any],
    embedder: CachedEmbedder,
    params: scoring.ScoringParams,
) -> dict[str, Any]:
    items = ev.read_labeled(args.eval)
    vectors = ev.embed_items(embedder, items, cfg.model.max_seq_length)
    out = {}
    for mode, use_require in (("hybrid", True), ("semantic-only", False)):
        p = replace(params, use_require=use_require)
        topics = ev.build_topics(cfg, embedder, specs, params=p)
        report = ev.evaluate(topics, items, vectors, p).report()
        best = report["at_best_threshold"]
        langs = defaultdict(dict)
        for lang, fig in best["per_language"].items():
            langs[lang] = fig["f1"]
        print(
            f"\ndev {mode:13s} configured: F1 {report['f1']:.4f} C_det {report['c_det_norm']:.4f}"
            f" | best shift {report['best_threshold_offset']:+.3f}: F1 {best['f1']:.4f} "
            f"C_det {best['c_det_norm']:.4f} per language {dict(langs)}"
        )
        out[mode] = report
    return out


if __name__ == "__main__":
    sys.exit(main())
