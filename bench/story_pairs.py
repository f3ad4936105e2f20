"""How similar are two reports of one event, within and across languages? Story-grouping pairs.

    python bench/story_pairs.py --eval ../shared/eval/dev.jsonl \\
        --stream ../shared/stream/2023-09.jsonl.gz --labels ../shared/stream/2023-09.labels.json \\
        --cache /tmp/analysis-cache

Story grouping joins a new match to an open story when its article's vector (the passage side,
as the matching stage stores it) is at least ``story_similarity`` from a member's. Which
threshold is safe is a question about pairs of *relevant* articles, since only matches are
grouped: pairs published two weeks or more apart are different events (joining them loses an
alert), pairs within the story window (48 h) are partly the same event (joining those saves
one). This prints, for each set (the eval file's relevant items, the stream's labelled
positives) and each threshold, the share of far and of near pairs that would join, separately
for pairs in one language and pairs across languages (the item's ``lang``), and per kind the
lowest threshold at which far pairs join at most 1 in 5,000 (the rule the shipped 0.94 follows).
Vectors are cached under ``--cache`` (shared with bench/alert_analysis.py).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from alert_analysis import CachedEncoder

from monitor.config import load_config
from monitor.embed import PASSAGE, article_text, load_embedder

REPO_ROOT = Path(__file__).resolve().parent.parent
NEAR_S = 48 * 3600
FAR_S = 14 * 86400
MAX_FAR_RATE = 1 / 5000


def _when(text: str) -> float:
    when = datetime.fromisoformat(text.replace(" ", "T"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def eval_items(path: Path) -> list[tuple[str, str, str, float]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        # only exact dates (a day at least): "2023-09" says nothing about which week
        if row.get("relevant") and len(row.get("published") or "") >= len("2023-09-01"):
            out.append(
                (row["title"], row.get("text", ""), row.get("lang") or "?", _when(row["published"]))
            )
    return out


def stream_positives(stream: Path, labels: Path) -> list[tuple[str, str, str, float]]:
    positive = set(json.loads(labels.read_text(encoding="utf-8")).get("positive", []))
    out, seen = [], set()
    with gzip.open(stream, "rt", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            if row["link"] in positive and row["link"] not in seen:
                seen.add(row["link"])
                out.append(
                    (
                        row["title"] or "",
                        row["summary"] or "",
                        row.get("lang") or "?",
                        _when(row["published"]),
                    )
                )
    return out


def pair_table(name: str, items: list[tuple[str, str, str, float]], vectors: np.ndarray) -> None:
    sims = vectors @ vectors.T
    times = np.array([i[3] for i in items])
    langs = np.array([i[2] for i in items])
    iu = np.triu_indices(len(items), k=1)
    s = sims[iu]
    dt = np.abs(times[iu[0]] - times[iu[1]])
    cross = langs[iu[0]] != langs[iu[1]]
    kinds = {
        "far, one language": (dt >= FAR_S) & ~cross,
        "far, across": (dt >= FAR_S) & cross,
        "near, one language": (dt <= NEAR_S) & ~cross,
        "near, across": (dt <= NEAR_S) & cross,
    }
    print(
        f"\n{name}: {len(items)} items; pairs "
        + ", ".join(f"{k} {int(m.sum())}" for k, m in kinds.items())
    )
    print(f"{'threshold':>9} " + " ".join(f"{k:>20}" for k in kinds))
    for t in np.arange(0.84, 0.961, 0.01):
        cells = []
        for mask in kinds.values():
            n = int(mask.sum())
            cells.append(f"{(s[mask] >= t).sum() / n:20.3%}" if n else f"{'-':>20}")
        print(f"{t:9.2f} " + " ".join(cells))
    for kind in ("far, one language", "far, across"):
        values = np.sort(s[kinds[kind]])[::-1]
        if len(values) == 0:
            continue
        allowed = int(len(values) * MAX_FAR_RATE)  # pairs that may join
        floor = values[allowed] + 1e-4 if allowed < len(values) else values[-1]
        print(f"lowest threshold with {kind} pairs joining <= 1 in 5,000: {floor:.3f}")
    for kind in ("near, across",):
        values = np.sort(s[kinds[kind]])[::-1]
        print(f"{kind}: top similarities {np.round(values[:10], 3).tolist()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", type=Path, default=None, help="labeled JSONL with published")
    parser.add_argument("--stream", type=Path, default=None, help="PATH.jsonl.gz")
    parser.add_argument("--labels", type=Path, default=None, help="PATH.json (with --stream)")
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "config.toml")
    parser.add_argument("--cache", type=Path, default=None, help="folder for cached vectors")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    cache = CachedEncoder(load_embedder(cfg.model), args.cache)
    sets = []
    if args.eval is not None:
        sets.append((f"{args.eval.name} relevant items", eval_items(args.eval)))
    if args.stream is not None and args.labels is not None:
        sets.append((f"{args.stream.name} positives", stream_positives(args.stream, args.labels)))
    try:
        for name, items in sets:
            texts = [article_text(t, x, cfg.model.max_seq_length) for t, x, _, _ in items]
            pair_table(name, items, cache.encode(texts, kind=PASSAGE))
    finally:
        cache.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
