"""Latency from an item appearing in a feed to its alert reaching Slack, through the real daemon.

Starts ``python -m monitor run`` on a temporary config whose only feed is served by a local
HTTP server and whose Slack channel points at a local recording endpoint. After the daemon's
first poll (which stores the feed's existing entries as history, without alerts), items are
added to the feed one by one at random moments; each item's latency is the time from its
appearance in the served feed to the Slack request that carries its link. Prints the median
and worst latency. Target (issue 5): worst <= poll interval + 5 s.

    python bench/latency.py --items 50 --poll-interval 60          # the figure (~15 min)
    python bench/latency.py --items 10 --poll-interval 5           # a quick accelerated run

Needs the polling and matching stages (issues 3 and 4); without them no alert arrives and
the script says so and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.httpserver import LocalServer, Recorded, Reply

SUBJECTS = [
    "artillery shells",
    "ballistic missiles",
    "troops",
    "drones",
    "fuel shipments",
    "rocket launchers",
    "satellite technology",
    "fighter jets",
    "ammunition trains",
    "naval visits",
]
PLACES = [
    "Vladivostok",
    "Pyongyang",
    "Moscow",
    "the Vostochny cosmodrome",
    "Khabarovsk",
    "the Tumen river bridge",
    "Rason port",
    "Kursk",
    "Donetsk",
    "the Kremlin",
]


def item_text(number: int) -> tuple[str, str]:
    """A distinct on-topic headline and summary per item (so story grouping keeps them apart)."""
    subject = SUBJECTS[number % len(SUBJECTS)]
    place = PLACES[(number // len(SUBJECTS)) % len(PLACES)]
    title = f"North Korea and Russia deal on {subject} reported near {place} (item {number})"
    summary = (
        f"Kim Jong Un and Vladimir Putin's governments expand military cooperation: "
        f"officials describe {subject} linked to {place}. Report number {number}."
    )
    return title, summary


class Feed:
    """The served RSS document; items are added while the daemon runs."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str, datetime]] = []
        self.lock = threading.Lock()

    def add(self, number: int) -> str:
        title, summary = item_text(number)
        link = f"https://news.example/latency/{number}"
        with self.lock:
            self.items.append((link, title, summary, datetime.now(UTC)))
        return link

    def reply(self, _request: Recorded) -> Reply:
        with self.lock:
            items = list(self.items)
        body = "".join(
            f"<item><title>{escape(t)}</title><link>{escape(link)}</link>"
            f"<guid>{escape(link)}</guid><description>{escape(s)}</description>"
            f"<pubDate>{format_datetime(when)}</pubDate></item>"
            for link, t, s, when in reversed(items)
        )
        xml = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            "<title>Latency bench</title><link>https://news.example/</link>"
            f"<description>bench</description>{body}</channel></rss>"
        )
        return Reply(body=xml.encode(), headers={"Content-Type": "application/rss+xml"})


CONFIG = """
[database]
url = "sqlite:///{tmp}/latency.db"

[polling]
interval = "{interval}s"
min_interval = "{interval}s"
tick = "1s"

[delivery]
story_similarity = 1.0   # measure latency, not grouping

[alerts.slack]
type = "slack"
url = "{slack}"
timeout = "10s"

[[feeds]]
url = "{feed}"
name = "Latency bench"

[[topics]]
name = "nk-russia"
descriptions = [
  "North Korea supports Russia: Kim Jong Un and Vladimir Putin",
  "arms deals and military cooperation between Pyongyang and Moscow",
]
threshold = {threshold}
channels = ["slack"]
"""


def alerted_links(slack: LocalServer) -> dict[str, float]:
    """link -> monotonic time of the first Slack request that carried it."""
    seen: dict[str, float] = {}
    for request in slack.requests_to("/slack"):
        text = json.dumps(json.loads(request.body))
        for link in re.findall(r"<(https://news\.example/latency/\d+)\|", text):
            seen.setdefault(link, request.at)
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--poll-interval", type=float, default=60.0, help="seconds")
    parser.add_argument(
        "--spread",
        type=float,
        default=0.0,
        help="seconds over which items appear (default: items x interval / 3)",
    )
    parser.add_argument("--threshold", type=float, default=0.2, help="topic threshold")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=180.0,
        help="seconds to wait for the daemon's first poll",
    )
    args = parser.parse_args()
    spread = args.spread or args.items * args.poll_interval / 3
    rng = random.Random(args.seed)
    feed = Feed()
    for number in range(3):
        feed.add(-1 - number)  # history: present before the first poll, never alerted
    with LocalServer() as feed_server, LocalServer() as slack, tempfile.TemporaryDirectory() as tmp:
        feed_server.route("/feed.xml", feed.reply)
        slack.route("/slack", Reply(status=200, body=b"ok"))
        config = Path(tmp) / "config.toml"
        config.write_text(
            CONFIG.format(
                tmp=tmp,
                interval=args.poll_interval,
                slack=slack.url("/slack"),
                feed=feed_server.url("/feed.xml"),
                threshold=args.threshold,
            ),
            encoding="utf-8",
        )
        log = (Path(tmp) / "daemon.log").open("w")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
        try:
            return measure(args, spread, rng, feed, feed_server, slack, daemon, Path(tmp))
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
            log.close()


def wait_for_warm_up(database: Path, deadline: float) -> bool:
    """Wait until the first poll's history entries are stored and matched: the model is then
    loaded, so the figure measures steady-state latency, not the model's cold start."""
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(database, timeout=5) as conn:
                total, pending = conn.execute(
                    "SELECT count(*), sum(matched_at IS NULL) FROM articles"
                ).fetchone()
            if total and not pending:
                return True
        except sqlite3.Error:
            pass  # the daemon has not created the schema yet
        time.sleep(0.5)
    return False


def measure(
    args: argparse.Namespace,
    spread: float,
    rng: random.Random,
    feed: Feed,
    feed_server: LocalServer,
    slack: LocalServer,
    daemon: subprocess.Popen[bytes],
    tmp: Path,
) -> int:
    deadline = time.monotonic() + args.startup_timeout
    while not feed_server.requests_to("/feed.xml"):
        if daemon.poll() is not None or time.monotonic() > deadline:
            print(
                "the daemon never polled the feed; its log:\n"
                + (tmp / "daemon.log").read_text()[-3000:]
            )
            return 1
        time.sleep(0.2)
    if not wait_for_warm_up(tmp / "latency.db", deadline):
        print(
            "the daemon never matched the feed's history entries; its log:\n"
            + (tmp / "daemon.log").read_text()[-3000:]
        )
        return 1
    offsets = sorted(rng.uniform(0, spread) for _ in range(args.items))
    appeared: dict[str, float] = {}
    start = time.monotonic()
    for number, offset in enumerate(offsets):
        time.sleep(max(0.0, start + offset - time.monotonic()))
        link = feed.add(number)
        appeared[link] = time.monotonic()
        print(f"\ritems added: {number + 1}/{args.items}", end="", flush=True)
    print()
    wait_until = time.monotonic() + args.poll_interval * 3 + 60
    while time.monotonic() < wait_until and len(alerted_links(slack)) < args.items:
        time.sleep(1)
    alerted = alerted_links(slack)
    latencies = sorted(alerted[link] - appeared[link] for link in appeared if link in alerted)
    if not latencies:
        print(
            "no alert reached Slack: are polling and matching built? daemon log tail:\n"
            + (tmp / "daemon.log").read_text()[-3000:]
        )
        return 1
    print(f"poll interval {args.poll_interval:g}s, {len(latencies)}/{args.items} items alerted")
    print(
        f"median latency {statistics.median(latencies):.1f}s, worst {latencies[-1]:.1f}s "
        f"(target: worst <= {args.poll_interval + 5:g}s)"
    )
    return 0 if len(latencies) == args.items else 1


if __name__ == "__main__":
    sys.exit(main())
