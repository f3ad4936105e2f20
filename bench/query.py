"""Query-side benchmark: matches listing (function and HTTP API) and semantic search.

Generates a synthetic database (N articles with random normalised 384-d vectors, M matches over
10 topics, 200 feeds, publication times spread over a year), then measures p50/p95 of

* ``list_matches(topic=T, since=7d, limit=50)``   (what ``monitor matches`` runs)
* ``GET /api/matches?topic=T&since=7d&limit=50``   (FastAPI TestClient, in process)
* ``VectorIndex.search`` over every vector          (what ``monitor search`` runs after start-up)
* the CLI path of search: open the memory-mapped cache, refresh against the DB, search

Targets (issue 6): matches p95 <= 100 ms, search <= 1 s.

    python bench/query.py --url sqlite:////tmp/bench/query.db --articles 1000000 --fresh
    python bench/query.py --url postgresql+psycopg://postgres@127.0.0.1:5432/bench_query \\
        --articles 1000000 --fresh
    python bench/query.py --url sqlite:////tmp/bench/small.db --articles 20000 --fresh  # quick
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from monitor.config import Config, DatabaseConfig
from monitor.pipeline.runtime import Runtime
from monitor.store import db, read_models
from monitor.store.vectors import VectorIndex

MODEL_ID = "bench-model"
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
    args = parser.parse_args()

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
    bench_matches(engine, args.url, args.repeat)
    bench_search(engine, args, min(args.repeat, 30))


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
    for start in range(0, n_articles, CHUNK):
        stop = min(start + CHUNK, n_articles)
        vec = rng.standard_normal((stop - start, dim), dtype=np.float32)
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
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
    times.sort()
    cpu.sort()
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    cpu95 = cpu[max(0, round(0.95 * len(cpu)) - 1)]
    print(
        f"    (process CPU per call: p50 {statistics.median(cpu):.1f} ms, p95 {cpu95:.1f} ms; "
        f"load average {os.getloadavg()[0]:.1f})"
    )
    return statistics.median(times), p95, result


def bench_matches(engine: Engine, url: str, repeat: int) -> None:
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

    from fastapi.testclient import TestClient

    from monitor.api import create_app

    config = Config(database=DatabaseConfig(url=url))
    runtime = Runtime(config=config, engine=engine, sessions=sessions, worker_id="bench")
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


def bench_search(engine: Engine, args: argparse.Namespace, repeat: int) -> None:
    import tempfile

    sessions = db.make_session_factory(engine)
    cache = Path(args.cache_dir or tempfile.mkdtemp(prefix="bench-vectors-")) / MODEL_ID
    shutil.rmtree(cache, ignore_errors=True)
    index = VectorIndex(MODEL_ID, cache)
    started = time.perf_counter()
    with db.session_scope(sessions) as s:
        index.refresh(s)
    print(
        f"search index: first load of {len(index):,} vectors from the database + cache "
        f"write: {time.perf_counter() - started:.1f} s"
    )
    rng = np.random.default_rng(1)

    def query() -> int:
        q = rng.standard_normal(args.dim).astype(np.float32)
        return len(index.search(q / np.linalg.norm(q), limit=20))

    p50, p95, _ = _timed(query, repeat)
    print(
        f"search over {len(index):,} vectors (in-process index, serve/API): "
        f"p50 {p50:.0f} ms, p95 {p95:.0f} ms"
    )

    def query_since() -> int:
        q = rng.standard_normal(args.dim).astype(np.float32)
        return len(
            index.search(
                q / np.linalg.norm(q), limit=20, since=read_models.parse_when("30d"), lang="en"
            )
        )

    p50, p95, _ = _timed(query_since, repeat)
    print(f"search with --since 30d --lang en: p50 {p50:.0f} ms, p95 {p95:.0f} ms")

    def cli_path() -> int:
        fresh = VectorIndex(MODEL_ID, cache)  # what a new `monitor search` process does
        with db.session_scope(sessions) as s:
            fresh.refresh(s)
        q = rng.standard_normal(args.dim).astype(np.float32)
        return len(fresh.search(q / np.linalg.norm(q), limit=20))

    p50, p95, _ = _timed(cli_path, max(3, repeat // 3))
    print(
        f"search, CLI path (mmap cache open + DB refresh check + search): p50 {p50:.0f} ms, "
        f"p95 {p95:.0f} ms"
    )


if __name__ == "__main__":
    main()
