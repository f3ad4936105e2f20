"""Which approximate-nearest-neighbour library backs the search index: usearch, faiss or hnswlib.

Builds one HNSW index per library and storage type over the same synthetic vectors (clustered
like sentence embeddings, see :func:`synthetic_vectors`) and prints, per configuration: build
time, p50/p95 of a single-query search, recall@10 against exact search on the same queries, and
bytes on disk. The three libraries are optional: one not installed is skipped.

    python bench/ann_choice.py --vectors 100000 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

M = 16
EF_CONSTRUCTION = 128


def synthetic_vectors(n: int, dim: int, seed: int = 42, clusters: int = 2000) -> np.ndarray:
    """Unit vectors around ``clusters`` random centres, each at cosine ~0.75 to its centre.

    Why not uniform random vectors: sentence embeddings are not uniform on the sphere; news
    about one subject sits close together. Uniform random 384-d vectors have no near
    neighbours at all (every pair is at cosine ~0), which is the worst case for any graph
    index and says little about real use. This is still harder than real embeddings (whose
    intrinsic dimension is far below 384): the noise around each centre is full-rank.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    step = 50_000
    for start in range(0, n, step):
        stop = min(start + step, n)
        which = rng.integers(0, clusters, size=stop - start)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        block = centres[which] + 0.9 * noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    return out


def queries_like(vectors: np.ndarray, count: int, seed: int = 7) -> np.ndarray:
    """Queries near stored articles (a stored vector plus noise), as a search for a story is."""
    rng = np.random.default_rng(seed)
    picked = vectors[rng.integers(0, len(vectors), size=count)]
    noise = rng.standard_normal(picked.shape, dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = picked + 0.8 * noise
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ vectors.T
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    hits = sum(len(set(map(int, f)) & set(map(int, t))) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def measure(
    name: str,
    build: Callable[[np.ndarray], Any],
    query: Callable[[Any, np.ndarray], np.ndarray],
    save: Callable[[Any, Path], None],
    vectors: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
) -> dict[str, Any]:
    started = time.perf_counter()
    index = build(vectors)
    build_s = time.perf_counter() - started
    times, found = [], []
    query(index, queries[0])
    for q in queries:
        t0 = time.perf_counter()
        found.append(query(index, q))
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index"
        save(index, path)
        size = path.stat().st_size
    row = {
        "config": name,
        "build_s": round(build_s, 1),
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[max(0, round(0.95 * len(times)) - 1)], 2),
        "recall_at_10": round(recall(found, truth), 4),
        "bytes": size,
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ef", type=int, default=96, help="Search-time beam width.")
    parser.add_argument("--only", default="", help="Comma-separated config name prefixes.")
    args = parser.parse_args()
    vectors = synthetic_vectors(args.vectors, args.dim)
    queries = queries_like(vectors, args.queries)
    truth = exact_top(vectors, queries, 10)
    print(f"{args.vectors:,} vectors x {args.dim}, load average {os.getloadavg()[0]:.1f}")
    configs: list[tuple[str, Callable[[], tuple[Any, Any, Any]]]] = []

    def usearch_cfg(dtype: str) -> tuple[Any, Any, Any]:
        from usearch.index import Index

        def build(v: np.ndarray) -> Any:
            index = Index(
                ndim=args.dim,
                metric="cos",
                dtype=dtype,
                connectivity=M,
                expansion_add=EF_CONSTRUCTION,
                expansion_search=args.ef,
            )
            index.add(np.arange(len(v), dtype=np.uint64), v, threads=args.threads)
            return index

        return (
            build,
            lambda i, q: i.search(q, 10, threads=1).keys,
            lambda i, p: i.save(str(p)),
        )

    def faiss_cfg(kind: str) -> tuple[Any, Any, Any]:
        import faiss

        faiss.omp_set_num_threads(args.threads)

        def build(v: np.ndarray) -> Any:
            if kind == "f32":
                index = faiss.IndexHNSWFlat(args.dim, M, faiss.METRIC_INNER_PRODUCT)
            else:
                qtype = (
                    faiss.ScalarQuantizer.QT_fp16
                    if kind == "f16"
                    else faiss.ScalarQuantizer.QT_8bit
                )
                index = faiss.IndexHNSWSQ(args.dim, qtype, M, faiss.METRIC_INNER_PRODUCT)
                index.train(v)
            index.hnsw.efConstruction = EF_CONSTRUCTION
            index.add(v)
            index.hnsw.efSearch = args.ef
            return index

        def query(index: Any, q: np.ndarray) -> np.ndarray:
            faiss.omp_set_num_threads(1)
            return index.search(q.reshape(1, -1), 10)[1][0]

        return build, query, lambda i, p: faiss.write_index(i, str(p))

    def hnswlib_cfg() -> tuple[Any, Any, Any]:
        import hnswlib

        def build(v: np.ndarray) -> Any:
            index = hnswlib.Index(space="ip", dim=args.dim)
            index.init_index(max_elements=len(v), M=M, ef_construction=EF_CONSTRUCTION)
            index.add_items(v, num_threads=args.threads)
            index.set_ef(args.ef)
            return index

        return (
            build,
            lambda i, q: i.knn_query(q, k=10, num_threads=1)[0][0],
            lambda i, p: i.save_index(str(p)),
        )

    configs = [
        ("usearch-f32", lambda: usearch_cfg("f32")),
        ("usearch-f16", lambda: usearch_cfg("f16")),
        ("usearch-i8", lambda: usearch_cfg("i8")),
        ("faiss-f32", lambda: faiss_cfg("f32")),
        ("faiss-f16", lambda: faiss_cfg("f16")),
        ("faiss-i8", lambda: faiss_cfg("i8")),
        ("hnswlib-f32", hnswlib_cfg),
    ]
    wanted = [p for p in args.only.split(",") if p]
    for name, make in configs:
        if wanted and not any(name.startswith(p) for p in wanted):
            continue
        try:
            build, query, save = make()
        except ImportError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        measure(name, build, query, save, vectors, queries, truth)


if __name__ == "__main__":
    main()
