"""Polling benchmark: prints figures, asserts nothing.

Serves N synthetic feeds (default 1,000 feeds x 40 items, about 40 KB each) from a fast asyncio
HTTP/1.1 server written here (not nginx), in its own process so its CPU is not charged to the
measured one, spread over ``--hosts`` loopback addresses (default 50: 127.0.0.2 ...) so the
per-host limit (``polling.per_host``, keyed on scheme+host+port) behaves as with real feeds
instead of serialising every fetch on one host, and measures, each in a fresh subprocess:

1. ``full``: the first full cycle (fetch + parse + store) into a fresh SQLite database;
2. ``304``: a second cycle on the same database where every feed answers 304 Not Modified;
3. ``baseline``: a plain sequential ``feedparser.parse(url)`` loop over the same feeds;
4. ``rss2email``: ``r2e run --no-send`` over the same feeds, when ``--r2e`` points at an
   installed ``r2e`` (e.g. ``python -m venv /tmp/r2e && /tmp/r2e/bin/pip install rss2email``).

For each: wall time, CPU time (user+sys of the process and of every child it reaped, e.g. the
parser workers) and peak RSS (of the largest single process in the tree), all from ``wait4``
on the subprocess; the peak RSS and PSS of the whole process tree (the phase process, its
parser workers and multiprocessing's resource tracker), summed from ``/proc/<pid>/smaps_rollup``
every 0.1 s; the load average before and after. ``full`` and ``304`` also report the time of
the ``poll_due`` call alone (the parser pool started beforehand, as in a running daemon).

The embedding model is NOT loaded in the measured process by default (``poll_due`` polls and
stores; embedding is the matching stage's work): the figures are polling and storing alone, as
for every earlier run of this bench. ``--with-model`` loads the configured model (and embeds one
text) in the phase process before polling, to see the memory of a daemon that polls and matches
in one process.

    python bench/poll.py                       # 1000 feeds, all phases but rss2email
    python bench/poll.py --r2e /tmp/r2e/bin/r2e
    python bench/poll.py --feeds 200 --skip-baseline
    python bench/poll.py --feeds 10000 --skip-baseline          # issue 14's scale
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

HOSTS = 50
WORDS = [
    "council",
    "budget",
    "minister",
    "harbour",
    "election",
    "storm",
    "market",
    "river",
    "bridge",
    "school",
    "court",
    "police",
    "energy",
    "prices",
    "talks",
    "summit",
    "border",
    "trade",
    "union",
    "strike",
    "health",
    "hospital",
    "vaccine",
    "climate",
    "rain",
    "drought",
    "farmers",
    "wheat",
    "export",
    "import",
    "bank",
    "rates",
    "inflation",
    "growth",
    "factory",
    "workers",
    "railway",
    "airport",
    "ferry",
    "port",
    "tourism",
    "festival",
    "museum",
    "library",
    "university",
    "students",
    "research",
    "science",
    "space",
    "satellite",
    "launch",
    "mission",
    "navy",
    "army",
    "treaty",
    "alliance",
    "sanctions",
    "embassy",
]
ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------
# Synthetic feeds


def make_feed(index: int, items: int, host: str) -> bytes:
    rng = random.Random(index)
    base = time.time() - 86400
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>Bench feed {index}</title><link>http://{host}/</link>",
        "<description>synthetic</description><language>en</language><ttl>15</ttl>",
    ]
    for j in range(items):
        title = " ".join(rng.choice(WORDS) for _ in range(8)).capitalize()
        paragraphs = "".join(
            "&lt;p&gt;" + " ".join(rng.choice(WORDS) for _ in range(45)) + ".&lt;/p&gt;"
            for _ in range(2)
        )
        when = format_datetime(datetime.fromtimestamp(base + j * 600, UTC), usegmt=True)
        parts.append(
            f"<item><title>{title}</title>"
            f"<link>https://news{index}.example/{j}/story?utm_source=rss&amp;id={j}</link>"
            f'<guid isPermaLink="false">bench-{index}-{j}</guid><pubDate>{when}</pubDate>'
            f"<author>desk@news{index}.example (Desk)</author><category>world</category>"
            f"<description>{paragraphs}</description></item>"
        )
    parts.append("</channel></rss>\n")
    return "".join(parts).encode()


def host_of(index: int, hosts: int) -> str:
    """Loopback address number ``index % hosts``: 127.0.0.2 ... 127.0.0.251, then 127.0.1.2 ..."""
    n = index % hosts
    return f"127.0.{n // 250}.{2 + n % 250}"


def feed_urls(n: int, port: int, hosts: int = HOSTS) -> list[str]:
    return [f"http://{host_of(i, hosts)}:{port}/feed/{i}.xml" for i in range(n)]


# ------------------------------------------------------------------------------------------
# A fast HTTP/1.1 server (keep-alive, ETag -> 304), one process, many loopback listeners


class _Http(asyncio.Protocol):
    def __init__(self, bodies: dict[bytes, tuple[bytes, bytes]], served: list[int]) -> None:
        self.bodies, self.served, self.buffer = bodies, served, b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            path = lines[0].split(b" ")[1] if len(lines[0].split(b" ")) > 1 else b"/"
            etag_sent = next(
                (
                    ln.split(b":", 1)[1].strip()
                    for ln in lines[1:]
                    if ln.lower().startswith(b"if-none-match:")
                ),
                None,
            )
            self.served[0] += 1
            found = self.bodies.get(path)
            if found is None:
                self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            elif etag_sent == found[0]:
                self.transport.write(
                    b"HTTP/1.1 304 Not Modified\r\nETag: "
                    + found[0]
                    + b"\r\nContent-Length: 0\r\n\r\n"
                )
            else:
                self.transport.write(found[1])


def serve(port_out: Any, feeds: int, items: int, hosts: int) -> None:
    bodies: dict[bytes, tuple[bytes, bytes]] = {}
    for i in range(feeds):
        body = make_feed(i, items, host_of(i, hosts))
        etag = f'"bench-{i}-v1"'.encode()
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
            b"ETag: " + etag + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        bodies[f"/feed/{i}.xml".encode()] = (etag, head + body)
    served = [0]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        probe = socket.socket()
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
        probe.close()
        for h in range(min(hosts, feeds)):
            await loop.create_server(lambda: _Http(bodies, served), host_of(h, hosts), port)
        port_out.put((port, sum(len(b[1]) for b in bodies.values()) // max(feeds, 1)))
        await asyncio.Event().wait()

    asyncio.run(main())


# ------------------------------------------------------------------------------------------
# Phases (each runs in its own subprocess: python bench/poll.py --phase NAME ...)


def _runtime(db_path: str, urls: Sequence[str], workers: int) -> Any:
    from monitor.config import Config, DatabaseConfig, PollingConfig
    from monitor.pipeline.runtime import open_runtime
    from monitor.store import db, queries

    config = Config(
        database=DatabaseConfig(url=f"sqlite:///{db_path}"),
        polling=PollingConfig(parse_workers=workers),
    )
    runtime = open_runtime(config)
    with db.session_scope(runtime.sessions) as session:
        if not queries.list_feeds(session):
            for url in urls:
                queries.add_feed(session, url)
    return runtime


def phase_poll(
    db_path: str, urls: Sequence[str], workers: int, make_due: bool, with_model: bool
) -> dict[str, Any]:
    from sqlalchemy import update

    from monitor.pipeline.polling import parser_pool, poll_due
    from monitor.store import db
    from monitor.store.models import Feed

    runtime = _runtime(db_path, urls, workers)
    if with_model:  # resident as in a daemon that polls and matches in one process
        from monitor.pipeline.matching import get_embedder

        get_embedder(runtime).encode(["warm the model"], kind="passage")
    if make_due:
        with db.session_scope(runtime.sessions) as session:
            session.execute(update(Feed).values(next_poll_at=datetime.now(UTC)))
    parser_pool(runtime)  # warm, as in a running daemon
    cpu0, wall0 = os.times(), time.perf_counter()
    report = poll_due(runtime)
    wall = time.perf_counter() - wall0
    cpu1 = os.times()
    runtime.close()
    self_cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "poll_due_wall_s": round(wall, 2),
        "poll_due_main_cpu_s": round(self_cpu, 2),
        "report": report.__dict__,
    }


def phase_baseline(urls: Sequence[str]) -> dict[str, Any]:
    import feedparser

    entries = 0
    wall0 = time.perf_counter()
    for url in urls:
        entries += len(feedparser.parse(url).entries)
    return {"loop_wall_s": round(time.perf_counter() - wall0, 2), "entries": entries}


def calibrate(rounds: int = 20) -> float:
    """CPU seconds for one ``feedparser.parse`` of a bench feed, here and now: the machine's
    speed (and how contended it is) in one number, to compare runs made on different days."""
    import feedparser

    body = make_feed(0, 40, "127.0.0.2")
    started = time.process_time()
    for _ in range(rounds):
        feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
    return (time.process_time() - started) / rounds


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [
            int(c)
            for task in tasks
            for c in (task / "children").read_text().split()  # needs CONFIG_PROC_CHILDREN
        ]
    except OSError:
        return []


def tree_memory_kb(root: int) -> tuple[int, int]:
    """(RSS, PSS) in kB summed over ``root`` and all its descendants, from smaps_rollup.

    PSS charges a page shared by N processes 1/N to each: the tree's PSS is what the tree
    really costs the machine (spawned parser workers share the interpreter's pages)."""
    rss = pss = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
        stack.extend(_children(pid))
    return rss, pss


class TreeSampler(threading.Thread):
    """Samples a process tree's summed RSS and PSS every ``period_s``; keeps the peaks."""

    def __init__(self, pid: int, period_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.period_s = pid, period_s
        self.peak_rss_kb = self.peak_pss_kb = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.period_s):
            rss, pss = tree_memory_kb(self.pid)
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.peak_pss_kb = max(self.peak_pss_kb, pss)


def run_phase(name: str, extra: list[str]) -> dict[str, Any]:
    """Run one phase in a subprocess; measure it with wait4 (the tree's CPU, peak RSS of the
    largest process) and a /proc sampler (peak RSS and PSS of the whole tree)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--phase", name, *extra], stdout=subprocess.PIPE, env=env
    )
    sampler = TreeSampler(proc.pid)
    sampler.start()
    assert proc.stdout is not None
    out = proc.stdout.read()
    sampler.done.set()
    sampler.join()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    figures = {
        "load_avg": f"{load_before:.1f}->{os.getloadavg()[0]:.1f}",
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "tree_peak_rss_mb": round(sampler.peak_rss_kb / 1024, 1),
        "tree_peak_pss_mb": round(sampler.peak_pss_kb / 1024, 1),
        "exit": proc.returncode,
    }
    try:
        figures.update(json.loads(out.decode().strip().splitlines()[-1]))
    except (ValueError, IndexError):
        figures["output"] = out.decode()[-500:]
    return figures


def run_rss2email(r2e: str, urls: Sequence[str], workdir: Path) -> dict[str, Any]:
    opml = workdir / "feeds.opml"
    outlines = "".join(
        f'<outline type="rss" text="f{i}" xmlUrl="{u}"/>' for i, u in enumerate(urls)
    )
    opml.write_text(f'<?xml version="1.0"?><opml version="1.0"><body>{outlines}</body></opml>')
    cfg, data = str(workdir / "r2e.cfg"), str(workdir / "r2e.json")
    base = [r2e, "-c", cfg, "-d", data]
    subprocess.run([*base, "new", "bench@example.org"], check=True, capture_output=True)
    subprocess.run([*base, "opmlimport", str(opml)], check=True, capture_output=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*base, "run", "--no-send"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "exit": os.waitstatus_to_exitcode(status),
        "stderr_tail": err.decode()[-300:],
    }


# ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument(
        "--hosts", type=int, default=HOSTS, help="loopback addresses the feeds are spread over"
    )
    parser.add_argument(
        "--with-model",
        action="store_true",
        help="load the embedding model in the measured process first (daemon-like memory)",
    )
    parser.add_argument("--workers", type=int, default=0, help="parser processes (0 = cores)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--baseline-feeds",
        type=int,
        default=0,
        help="run the naive loop on only this many feeds (0 = all)",
    )
    parser.add_argument("--r2e", default="", help="path to an installed r2e executable")
    parser.add_argument("--phase", default="", help=argparse.SUPPRESS)
    parser.add_argument("--db", default="", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        urls = feed_urls(args.feeds, args.port, args.hosts)
        if args.phase in ("full", "304"):
            make_due = args.phase == "304"
            result = phase_poll(args.db, urls, args.workers, make_due, args.with_model)
        else:
            result = phase_baseline(urls[: args.baseline_feeds or None])
        print(json.dumps(result))
        return

    queue: Any = multiprocessing.get_context("spawn").Queue()
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(queue, args.feeds, args.items, args.hosts), daemon=True
    )
    server.start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    try:
        port, avg_size = queue.get(timeout=300)
        print(
            f"serving {args.feeds} feeds x {args.items} items (~{avg_size // 1024} KB each) "
            f"on {min(args.hosts, args.feeds)} loopback hosts, port {port}, from bench/poll.py's "
            f"own asyncio HTTP/1.1 server in a separate process; {os.cpu_count()} CPUs"
        )
        print(
            "embedding model: "
            + ("loaded in the measured process" if args.with_model else "not loaded (polling only)")
        )
        common = [
            "--feeds",
            str(args.feeds),
            "--hosts",
            str(args.hosts),
            *(["--with-model"] if args.with_model else []),
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--db",
            str(workdir / "bench.db"),
        ]
        print(
            f"calibration: feedparser.parse of one feed = {calibrate() * 1000:.1f} ms CPU; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        results = {"full": run_phase("full", common), "304": run_phase("304", common)}
        if not args.skip_baseline:
            results["baseline"] = run_phase(
                "baseline", [*common, "--baseline-feeds", str(args.baseline_feeds)]
            )
        if args.r2e and shutil.which(args.r2e):
            urls = feed_urls(args.feeds, port, args.hosts)
            results["rss2email"] = run_rss2email(args.r2e, urls, workdir)
        for name, figures in results.items():
            print(f"{name:10s} " + " ".join(f"{k}={v}" for k, v in figures.items()))
    finally:
        server.terminate()
        server.join(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
