"""The plain-RSS fast path on real feeds: how many it reads, whether it agrees, what it saves.

    python bench/plainrss.py ../shared/feeds/real/*.xml

For each file: parsed through the fast path and through feedparser (``plain_rss=False``); prints
which path read it, whether both give the same ParsedFeed, and the CPU time of each path
(median of 5 runs). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from monitor.feeds.parse import parse_feed
from monitor.feeds.plainrss import read_plain_rss

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONTENT_TYPE = "application/rss+xml"


def cpu_ms(body: bytes, *, plain_rss: bool, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.process_time()
        parse_feed(
            body,
            url="https://feed.example/",
            content_type=CONTENT_TYPE,
            fetched_at=NOW,
            plain_rss=plain_rss,
        )
        times.append(time.process_time() - started)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="feed documents (RSS/Atom)")
    args = parser.parse_args()
    fast = same = 0
    fast_ms = slow_ms = 0.0
    for path in args.files:
        body = path.read_bytes()
        taken = read_plain_rss(body, CONTENT_TYPE) is not None
        try:
            slow = parse_feed(
                body,
                url="https://feed.example/",
                content_type=CONTENT_TYPE,
                fetched_at=NOW,
                plain_rss=False,
            )
        except Exception as exc:  # unusable documents are reported, not benchmarked
            print(f"{path.name[:60]:60s} unusable: {exc}")
            continue
        result = parse_feed(
            body, url="https://feed.example/", content_type=CONTENT_TYPE, fetched_at=NOW
        )
        agrees = result == slow
        fast += taken
        same += taken and agrees
        line = f"{path.name[:60]:60s} {'fast path ' if taken else 'feedparser'} {len(slow.entries):4d} entries"
        if taken:
            f_ms, s_ms = cpu_ms(body, plain_rss=True), cpu_ms(body, plain_rss=False)
            fast_ms, slow_ms = fast_ms + f_ms, slow_ms + s_ms
            line += f"  {f_ms:6.2f} ms vs {s_ms:6.2f} ms  {'same' if agrees else 'DIFFERENT'}"
        print(line)
    print(
        f"{len(args.files)} files; fast path read {fast}, identical to feedparser {same}; "
        f"CPU on those: {fast_ms:.1f} ms vs {slow_ms:.1f} ms with feedparser"
        + (f" ({slow_ms / fast_ms:.1f}x)" if fast_ms else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
