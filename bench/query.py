"""Query-side benchmark: matches listing (function and HTTP API) and semantic search.

Generates a synthetic database (N articles with random normalised 384-d vectors, M matches over
10 topics, 200 feeds, publication times spread over a year), then measures p50/p95 of

* ``list_matches(topic=T, since=7d, limit=50)``   (what ``monitor matches`` runs)
* ``GET /api/matches?topic=T&since=7d&limit=50``   (FastAPI TestClient, in process)
* the web matches page with filters (``--page-url``, FastAPI TestClient)
* search through the persistent index (monitor/store/annindex.py), as ``search_articles`` runs
  it after embedding the query: catch-up check, graph search, exact re-ranking from the DB;
  recall@10 against an exact scan of the same vectors on the same queries
* a fresh ``monitor search`` process with the index on disk (``cold_search_s``)

Targets (issue 14): at 1,000,000 articles search p95 <= 100 ms, recall@10 >= 0.95, cold search
<= 3 s, index <= 800 MB; matches p95 <= 100 ms. ``--json`` prints one JSON object.

    python bench/query.py --url sqlite:////tmp/bench/query.db --articles 1000000 --fresh
    python bench/query.py --url postgresql+psycopg://postgres@127.0.0.1:5432/bench_query \\
        --articles 1000000 --fresh
    python bench/query.py --url sqlite:////tmp/bench/small.db --articles 20000 --fresh  # quick
    python bench/query.py --url sqlite:////tmp/bench/query.db --json   # re-measure, JSON out
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from monitor.config import Config, DatabaseConfig, ModelConfig, SearchConfig
from monitor.embed import model_id_for
from monitor.pipeline import indexing
from monitor.pipeline.runtime import Runtime
from monitor.store import db, read_models
from monitor.store.vectors import VectorIndex

REAL_STDOUT = sys.stdout

# the shipped default model's id, so a real `monitor search` process searches these vectors
MODEL_ID = model_id_for(ModelConfig())
CLUSTERS = 2000
TOPICS = 10
FEEDS = 200
CHUNK = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of the bench database.")
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--matches", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=200, help="Timed runs per query.")
    parser.add_argument("--fresh", action="store_true", help="Drop and regenerate the data.")
    parser.add_argument("--cache-dir", default="", help="Vector cache folder (default: temp).")
    parser.add_argument("--generate-only", action="store_true", help="Stop after generating.")
    parser.add_argument(
        "--index-dir",
        default="auto",
        help='search.index_dir for the bench ("auto": next to a SQLite file, else the data dir).',
    )
    parser.add_argument(
        "--page-url",
        default="/matches?topic=topic-1&since=7d",
        help="Web matches page (with filters) whose p95 is reported as page_p95_ms.",
    )
    parser.add_argument("--no-cold", action="store_true", help="Skip the `monitor search` run.")
    parser.add_argument(
        "--json", action="store_true", help="Print one JSON object on stdout (the rest on stderr)."
    )
    args = parser.parse_args()
    if args.json:
        sys.stdout = sys.stderr  # human-readable lines go to stderr; the JSON to the real stdout

    if args.fresh:
        _drop(args.url)
    db.upgrade(args.url)
    engine = db.make_engine(args.url)
    if _count(engine) == 0:
        started = time.perf_counter()
        generate(engine, args.articles, args.matches, args.dim)
        print(
            f"generated {args.articles:,} articles, {args.matches:,} matches in "
            f"{time.perf_counter() - started:.1f} s"
        )
    print(f"database: {db.redact_url(args.url)}  articles: {_count(engine):,}")
    if args.generate_only:
        return
    results: dict[str, Any] = {"articles": _count(engine), "database": engine.dialect.name}
    results.update(bench_matches(engine, args.url, args.repeat, args.page_url))
    results.update(bench_search(engine, args, args.repeat))
    results["load_average"] = round(os.getloadavg()[0], 1)
    if args.json:
        print(json.dumps(results), file=REAL_STDOUT)


def _drop(url: str) -> None:
    if db.is_sqlite(url):
        path = Path(url.split("///", 1)[1])
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
        shutil.rmtree(f"{path}.vectors", ignore_errors=True)
        return
    engine = db.make_engine(url, null_pool=True)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM articles")).scalar() or 0)


# -- generation ------------------------------------------------------------------------------


def generate(engine: Engine, n_articles: int, n_matches: int, dim: int) -> None:
    """Bulk insert: executemany on SQLite, COPY on PostgreSQL; indexes are already there."""
    rng = np.random.default_rng(42)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    year_s = 365 * 86400
    feeds = [
        (
            i,
            f"http://bench.invalid/feed/{i}.xml",
            f"Bench feed {i}",
            "",
            "",
            "en",
            "[]",
            now,
            now,
            True,
            False,
            "",
            0,
            "",
            now,
        )
        for i in range(1, FEEDS + 1)
    ]
    topics = [(i, f"topic-{i - 1}", 0.4, "", now, now, True) for i in range(1, TOPICS + 1)]
    _load(
        engine,
        "feeds",
        [
            "id",
            "url",
            "name",
            "title",
            "site_url",
            "language",
            "tags",
            "next_poll_at",
            "created_at",
            "enabled",
            "from_config",
            "disabled_reason",
            "consecutive_errors",
            "last_error",
            "last_success_at",
        ],
        feeds,
    )
    _load(
        engine,
        "topics",
        ["id", "name", "threshold", "config_hash", "created_at", "updated_at", "active"],
        topics,
    )
    ages = rng.integers(0, year_s, size=n_articles)
    centres = cluster_centres(dim)
    for start in range(0, n_articles, CHUNK):
        stop = min(start + CHUNK, n_articles)
        vec = clustered(rng, centres, stop - start)
        rows = []
        embeds = []
        for k, i in enumerate(range(start, stop)):
            pub = now - timedelta(seconds=int(ages[i]))
            link = f"http://bench.invalid/a/{i}"
            rows.append(
                (
                    i + 1,
                    1 + i % FEEDS,
                    f"e{i}",
                    link,
                    link,
                    f"Synthetic article {i}",
                    "",
                    "",
                    "[]",
                    "en" if i % 3 else "id",
                    pub,
                    pub,
                    False,
                    pub,
                )
            )
            embeds.append((i + 1, MODEL_ID, dim, vec[k].tobytes(), now))
        _load(
            engine,
            "articles",
            [
                "id",
                "feed_id",
                "entry_key",
                "link",
                "canonical_link",
                "title",
                "summary",
                "author",
                "tags",
                "language",
                "published_at",
                "fetched_at",
                "is_history",
                "matched_at",
            ],
            rows,
        )
        _load(
            engine, "embeddings", ["article_id", "model_id", "dim", "vector", "created_at"], embeds
        )
        print(f"  {stop:,} articles", end="\r", flush=True)
    print()
    chosen = rng.choice(n_articles, size=min(n_matches, n_articles), replace=False)
    matches = []
    for j, i in enumerate(chosen):
        pub = now - timedelta(seconds=int(ages[i]))
        score = float(rng.uniform(0.35, 0.9))
        matches.append(
            (j + 1, int(i) + 1, 1 + j % TOPICS, score, score, '{"passage": "p"}', pub, pub, True)
        )
    _load(
        engine,
        "matches",
        [
            "id",
            "article_id",
            "topic_id",
            "score",
            "semantic_score",
            "explanation",
            "published_at",
            "created_at",
            "alerted",
        ],
        matches,
    )
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in ("feeds", "topics", "articles", "matches"):
                # fixed table names, not input
                sql = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608
                conn.execute(text(sql))
        # VACUUM sets the visibility map, as autovacuum soon would in production: without it
        # the index-only count(*) the search refresh runs visits every heap page
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def cluster_centres(dim: int, seed: int = 11) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dim), dtype=np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def clustered(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    """``n`` unit vectors around random ``centres`` (cosine ~0.75 to their centre).

    Sentence embeddings are not uniform on the sphere: reports on one subject sit together.
    Uniform random vectors have no near neighbours at all (every pair at cosine ~0), the worst
    case for any graph index and nothing like real use; full-rank noise around 2,000 centres
    is still harder than real embeddings, whose intrinsic dimension is far below 384.
    """
    which = rng.integers(0, len(centres), size=n)
    noise = rng.standard_normal((n, centres.shape[1]), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    block = centres[which] + 0.9 * noise
    return (block / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float32)


def _load(engine: Engine, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
            cur.executemany(sql, rows)
        raw.commit()
    finally:
        raw.close()


# -- measurements ----------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(q * len(ordered)) - 1)]


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(p50 ms, p95 ms, last result) of wall time; the process CPU time is printed too, because
    on a shared machine wall time mostly measures waiting for a core."""
    fn()  # warm-up: first-call costs (plan cache, page cache) are start-up, not steady state
    times = []
    cpu = []
    result = None
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    print(
        f"    (process CPU per call: p50 {statistics.median(cpu):.1f} ms, "
        f"p95 {_pct(cpu, 0.95):.1f} ms; load average {os.getloadavg()[0]:.1f})"
    )
    return statistics.median(times), _pct(times, 0.95), result


def _runtime(engine: Engine, url: str, index_dir: str) -> Runtime:
    config = Config(database=DatabaseConfig(url=url), search=SearchConfig(index_dir=index_dir))
    sessions = db.make_session_factory(engine)
    return Runtime(config=config, engine=engine, sessions=sessions, worker_id="bench")


def bench_matches(engine: Engine, url: str, repeat: int, page_url: str) -> dict[str, Any]:
    sessions = db.make_session_factory(engine)
    topics = [f"topic-{i}" for i in range(TOPICS)]
    counter = iter(range(10**9))

    def query() -> int:
        topic = topics[next(counter) % TOPICS]
        with db.session_scope(sessions) as s:
            rows, _ = read_models.list_matches(
                s,
                read_models.MatchFilter(topic=topic, since=read_models.parse_when("7d"), limit=50),
            )
        return len(rows)

    p50, p95, n = _timed(query, repeat)
    print(
        f"matches --topic T --since 7d --limit 50 (function): p50 {p50:.1f} ms, "
        f"p95 {p95:.1f} ms  ({n} rows)"
    )
    out: dict[str, Any] = {"matches_p50_ms": round(p50, 1), "matches_p95_ms": round(p95, 1)}

    from fastapi.testclient import TestClient

    from monitor.api import create_app

    runtime = _runtime(engine, url, "auto")
    # the API answers only to names of this machine (DNS-rebinding guard), not "testserver"
    client = TestClient(create_app(runtime, token=""), base_url="http://localhost")

    def api() -> int:
        topic = topics[next(counter) % TOPICS]
        response = client.get("/api/matches", params={"topic": topic, "since": "7d", "limit": 50})
        response.raise_for_status()
        return len(response.json()["items"])

    p50, p95, n = _timed(api, repeat)
    print(
        f"GET /api/matches?topic=T&since=7d&limit=50 (TestClient): p50 {p50:.1f} ms, "
        f"p95 {p95:.1f} ms  ({n} rows)"
    )
    out["api_matches_p95_ms"] = round(p95, 1)

    def page() -> int:
        response = client.get(page_url)
        response.raise_for_status()
        return len(response.content)

    p50, p95, size = _timed(page, repeat)
    print(f"GET {page_url} (web page, TestClient): p50 {p50:.1f} ms, p95 {p95:.1f} ms ({size} B)")
    out.update({"page_url": page_url, "page_p50_ms": round(p50, 1), "page_p95_ms": round(p95, 1)})
    return out


def bench_search(engine: Engine, args: argparse.Namespace, repeat: int) -> dict[str, Any]:
    runtime = _runtime(engine, args.url, args.index_dir)
    index = indexing.search_index(runtime, MODEL_ID)
    assert index is not None, "--index-dir must not be empty"
    out: dict[str, Any] = {"index_dir": str(index.directory), "index_dtype": index.dtype}
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] > 10 or done == total:
            last[0] = time.monotonic()
            print(f"  index: {done:,} / {total:,} vectors", flush=True)

    started = time.perf_counter()
    report = indexing.sync_for_search(runtime, index, throttle=False, progress=progress)
    out["index_sync_s"] = round(time.perf_counter() - started, 1)
    out["index_rebuilt"] = report.rebuilt
    print(f"search index: {'built' if report.rebuilt else 'opened'} in {out['index_sync_s']} s")
    out["index_bytes"] = sum(
        p.stat().st_size
        for p in index.directory.iterdir()
        if p.name.startswith(("index-", "meta-"))
    )
    print(f"search index on disk: {out['index_bytes'] / 1e6:.0f} MB ({len(index):,} vectors)")

    rng = np.random.default_rng(1)
    queries = clustered(rng, cluster_centres(args.dim), repeat + 1)
    started = time.perf_counter()
    exact = VectorIndex(MODEL_ID)
    with db.session_scope(runtime.sessions) as s:
        exact.refresh(s)
    print(
        f"exact reference: {len(exact):,} vectors loaded in {time.perf_counter() - started:.0f} s"
    )

    def run(filters: Any, lim: int = 10) -> Callable[[], list[tuple[int, float]]]:
        counter = iter(range(10**9))

        def once() -> list[tuple[int, float]]:
            q = queries[next(counter) % len(queries)]
            with db.session_scope(runtime.sessions) as s:
                return index.search(q, limit=lim, filters=filters, session=s)

        return once

    from monitor.store.annindex import Filters

    p50, p95, _ = _timed(run(None), repeat)
    print(f"search top-10 (index + re-rank): p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    out.update({"search_p50_ms": round(p50, 1), "search_p95_ms": round(p95, 1)})
    since = read_models.parse_when("30d")
    flt = Filters(since=since, lang="en")
    p50, p95, _ = _timed(run(flt, 20), repeat)
    print(f"search --since 30d --lang en --limit 20: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    out.update({"search_filtered_p50_ms": round(p50, 1), "search_filtered_p95_ms": round(p95, 1)})

    hits = total = 0
    short = 0
    for q in queries[:repeat]:
        with db.session_scope(runtime.sessions) as s:
            found = {i for i, _ in index.search(q, limit=10, session=s)}
            filtered = index.search(q, limit=20, filters=flt, session=s)
        truth = {i for i, _ in exact.search(q, limit=10)}
        hits += len(found & truth)
        total += len(truth)
        short += len(filtered) < 20
    out["search_recall_at_10"] = round(hits / max(total, 1), 4)
    out["filtered_searches_short_of_limit"] = short
    print(f"recall@10 against an exact scan: {out['search_recall_at_10']}")
    del exact

    if not args.no_cold:
        out["cold_search_s"], out["cold_search_cpu_s"] = cold_search(
            args.url, str(index.directory.parent)
        )
        print(
            f"cold `monitor search` (fresh process, index on disk): {out['cold_search_s']} s "
            f"wall, {out['cold_search_cpu_s']} s CPU"
        )
    return out


def cold_search(url: str, index_root: str) -> tuple[float, float]:
    """(wall, CPU) seconds of a fresh ``monitor search`` process: start-up, model, index,
    query. On a shared machine the wall time is mostly time spent waiting for a core."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(
            textwrap.dedent(f"""
                [database]
                url = "{url}"
                [search]
                index_dir = "{index_root}"
            """),
            encoding="utf-8",
        )
        command = [sys.executable, "-m", "monitor", "--config", str(config), "search"]
        command += ["troops sent to Russia", "--min-score=-1", "--format", "json"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"monitor search failed: {done.stderr.strip()[-500:]}")
        if not json.loads(done.stdout):
            raise SystemExit("monitor search returned nothing")
    return round(elapsed, 2), round(cpu, 2)


if __name__ == "__main__":
    main()
