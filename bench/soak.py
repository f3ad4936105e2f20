"""Soak: the real daemon against 1,000 local feeds with new items arriving, watched over time.

    python bench/soak.py --feeds 1000 --minutes 60

Every feed publishes a new item every ``--item-every`` seconds (staggered), a few of them on the
shipped topics so matching and delivery (to a local Slack-compatible endpoint) run too. Every
``--sample-every`` seconds it prints the RSS of the daemon's process tree, its open file
descriptors and the database size. At the end it checks that RSS did not grow by more than 10%
after warm-up (the first quarter of the run, at least 2 minutes): the exit code is 1 when it did.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import (
    REPO_ROOT,
    ProcessTree,
    dump_toml,
    mb,
    shipped_base,
    start_daemon,
    stop_daemon,
)

from tests.support.faults import FeedFarm, Item
from tests.support.httpserver import LocalServer, Reply

WORDS = [
    "market",
    "council",
    "election",
    "storm",
    "rail",
    "budget",
    "hospital",
    "school",
    "harbour",
    "court",
    "energy",
    "festival",
    "farmers",
    "bridge",
    "museum",
    "league",
    "police",
    "drought",
    "vaccine",
    "bank",
]
ON_TOPIC = (
    "Kim Jong Un meets Putin in Russia to discuss weapons for the war in Ukraine",
    "North Korea ships artillery shells to Russia, officials say",
    "New sanctions target North Korea and Russia over arms deal",
)


def make_items(
    feed_no: int, start: datetime, minutes: float, every_s: float, rng: random.Random
) -> list[Item]:
    """A feed's items over the run: one every ``every_s`` seconds from a staggered offset."""
    items, offset = [], rng.uniform(0, every_s)
    count = int(minutes * 60 / every_s) + 1
    for n in range(count):
        when = start + timedelta(seconds=offset + n * every_s)
        if rng.random() < 0.002:
            title = rng.choice(ON_TOPIC)
        else:
            title = " ".join(rng.choice(WORDS) for _ in range(8)).capitalize()
        items.append(
            Item(
                link=f"http://soak.example/{feed_no}/{n}",
                title=title,
                summary=title + ". " + " ".join(rng.choice(WORDS) for _ in range(30)),
                published=when,
            )
        )
    return items


def write_config(args: argparse.Namespace, workdir: Path, urls: list[str], slack: str) -> Path:
    base, topics = shipped_base(args.config)
    data: dict[str, Any] = {
        "database": {"url": args.database_url or f"sqlite:///{workdir / 'soak.db'}"},
        "model": base.get("model", {}),
        "polling": {
            "interval": f"{args.interval}s",
            "min_interval": "1s",
            "max_interval": f"{args.interval}s",
            "tick": "1s",
            "per_host": 64,
            "concurrency": 64,
        },
        "delivery": {"retry_base": "1s", "retry_cap": "10s"},
        "alerts": {"slack": {"type": "slack", "url": slack}},
        "feeds": [{"url": u} for u in urls],
        "topics": topics,
    }
    path = workdir / "config.toml"
    path.write_text(dump_toml(data), encoding="utf-8")
    return path


def db_size(url: str) -> int:
    """Bytes on disk: the SQLite file with its WAL, or pg_database_size."""
    if url.startswith("sqlite:///"):
        base = url.split("///", 1)[1]
        return sum(os.path.getsize(p) for p in (base, base + "-wal") if os.path.exists(p))
    from sqlalchemy import text

    from monitor.store import db

    engine = db.make_engine(url, null_pool=True)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0
            )
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between polls")
    parser.add_argument(
        "--item-every", type=float, default=120.0, help="seconds between two items of one feed"
    )
    parser.add_argument("--sample-every", type=float, default=30.0)
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds of warm-up (model loaded, first matches); default: a "
        "quarter of the run, at least 2 minutes",
    )
    parser.add_argument("--config", default=str(REPO_ROOT / "config.toml"))
    parser.add_argument("--database-url", default="")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="monitor-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    database_url = args.database_url or f"sqlite:///{workdir / 'soak.db'}"
    rng = random.Random(7)
    start = datetime.now(UTC)
    with LocalServer() as server:
        farm = FeedFarm(server, lambda: datetime.now(UTC), empty_first=True, window=50)
        urls = [
            farm.add_feed(
                f"/soak/{n}.xml", make_items(n, start, args.minutes, args.item_every, rng)
            )
            for n in range(args.feeds)
        ]
        server.route("/slack", Reply(body=b"ok"))
        config = write_config(args, workdir, urls, server.url("/slack"))
        print(f"soak: {args.feeds} feeds, {args.minutes:g} min, work dir {workdir}", flush=True)
        print(f"{'t_s':>6} {'rss':>8} {'fds':>5} {'db':>8} {'cpu_s':>7} {'polls':>7}", flush=True)
        with (workdir / "daemon.log").open("wb") as log:
            proc = start_daemon(config, log)  # type: ignore[arg-type]
            tree = ProcessTree(proc.pid)
            deadline = time.monotonic() + args.minutes * 60
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(args.sample_every)
                s = tree.sample()
                print(
                    f"{s.at_s:6.0f} {mb(s.rss_bytes):>8} {s.fds:5d} "
                    f"{mb(db_size(database_url)):>8} {s.cpu_s:7.0f} "
                    f"{sum(farm.polls.values()):7d}",
                    flush=True,
                )
            code = stop_daemon(proc)
        slack_posts = len(server.requests_to("/slack"))
    return _verdict(tree, args.minutes, code, slack_posts, args.warmup)


def _verdict(
    tree: ProcessTree,
    minutes: float,
    code: int | None,
    slack_posts: int,
    warmup_s: float | None = None,
) -> int:
    warm_s = warmup_s if warmup_s is not None else max(120.0, minutes * 60 / 4)
    warm = [s for s in tree.samples if s.at_s <= warm_s]
    after = [s for s in tree.samples if s.at_s > warm_s]
    print(f"\ndaemon exit code {code}; Slack POSTs {slack_posts}")
    if not warm or not after:
        print("run too short to judge growth after warm-up")
        return 0
    base, peak = warm[-1].rss_bytes, max(s.rss_bytes for s in after)
    growth = (peak - base) / base if base else 0.0
    print(
        f"RSS after warm-up ({warm_s:.0f}s) {mb(base)}, peak later {mb(peak)}, "
        f"growth {growth:+.1%} (limit +10%)"
    )
    print(f"fds after warm-up {warm[-1].fds}, max later {max(s.fds for s in after)}")
    return 0 if growth <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
