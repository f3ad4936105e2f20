"""What N feedback judgements per topic do to the eval figures.

    python bench/feedback.py --data ../shared/eval/dev.jsonl [--judgements 20] [--cache /tmp/v.npy]

Simulates a user: the labeled items are split at random into a judging half and a test half.
For each topic, the user judges N of the judging-half items that the topic alerted on (highest
scores first would flatter the result, so they are drawn at random; if the topic matched fewer
than N, the best-scoring unmatched items fill up, as if seen in `topics preview`), by their
label. The topic is rebuilt with those articles as positive/negative exemplars (exactly what
`monitor feedback` does) and the figures on the test half are printed before and after, for the
hybrid score and the semantic-only score (each mode judged on what it alerted on).

``--cache`` keeps the item vectors in a file OUTSIDE the repository between runs.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

from monitor import evaluate as ev
from monitor import scoring
from monitor.config import load_config
from monitor.embed import load_embedder
from monitor.pipeline import matching as stage

REPO = Path(__file__).resolve().parent.parent


def pick_judged(
    topic: scoring.TopicModel,
    items: list[ev.LabeledItem],
    vectors: np.ndarray,
    pool: list[int],
    params: scoring.ScoringParams,
    n: int,
    rng: random.Random,
) -> list[scoring.FeedbackExample]:
    texts = [f"{items[i].title}\n{items[i].text}" for i in pool]
    verdicts = scoring.score_many(topic, texts, vectors[pool], params)
    matched = [pool[k] for k, v in enumerate(verdicts) if v.matched]
    chosen = rng.sample(matched, min(n, len(matched)))
    if len(chosen) < n:
        rest = sorted(
            (k for k, v in enumerate(verdicts) if not v.matched), key=lambda k: -verdicts[k].score
        )
        chosen += [pool[k] for k in rest[: n - len(chosen)]]
    return [scoring.FeedbackExample(items[i].title, vectors[i], items[i].relevant) for i in chosen]


def line(label: str, report: dict) -> str:
    langs = " ".join(
        f"{k}={v['f1']:.3f}" for k, v in report["per_language"].items() if k in ("en", "pl", "id")
    )
    best = report["at_best_threshold"]
    return (
        f"{label:<28} F1={report['f1']:.3f} C_det_norm={report['c_det_norm']:.3f} "
        f"P={report['precision']:.3f} R={report['recall']:.3f} [{langs}] | best "
        f"{report['best_threshold']:+.3f}: F1={best['f1']:.3f} C={best['c_det_norm']:.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=REPO / "config.toml")
    parser.add_argument("--judgements", type=int, default=20, help="per topic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="vector cache outside the repo")
    args = parser.parse_args()
    cfg = load_config(args.config)
    embedder = load_embedder(cfg.model)
    items = ev.read_labeled(args.data)
    if args.cache and args.cache.exists():
        vectors = np.load(args.cache)
    else:
        vectors = ev.embed_items(embedder, items, cfg.model.max_seq_length)
        if args.cache:
            np.save(args.cache, vectors)
    rng = random.Random(args.seed)
    order = list(range(len(items)))
    rng.shuffle(order)
    pool, test = sorted(order[: len(order) // 2]), sorted(order[len(order) // 2 :])
    test_items = [items[i] for i in test]
    base_topics = ev.build_topics(cfg, embedder, params=stage.scoring_params(cfg))
    print(
        f"{len(items)} items: {len(pool)} in the judging half, {len(test)} in the test half; "
        f"{args.judgements} judgements per topic"
    )
    for mode, params in (
        ("hybrid", stage.scoring_params(cfg)),
        ("semantic-only", stage.scoring_params(cfg, use_require=False)),
    ):
        before = ev.evaluate(base_topics, test_items, vectors[test], params).report()
        feedback = {
            t.name: pick_judged(t, items, vectors, pool, params, args.judgements, rng)
            for t in base_topics
        }
        judged = {
            k: (sum(f.relevant for f in v), sum(not f.relevant for f in v))
            for k, v in feedback.items()
        }
        after_topics = ev.build_topics(cfg, embedder, feedback=feedback, params=params)
        after = ev.evaluate(after_topics, test_items, vectors[test], params).report()
        print(f"\n{mode}: judged (relevant, irrelevant) per topic: {judged}")
        print(line("  before feedback", before))
        print(line(f"  after {args.judgements} judgements/topic", after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
