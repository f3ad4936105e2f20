"""Replay a recorded month of RSS through the real daemon and score its alerts.

    python bench/replay.py --stream ../shared/stream/2023-09.jsonl.gz \\
        --labels ../shared/stream/2023-09.labels.json --speed 720

A loopback HTTP server serves each distinct ``feed`` of the stream as an RSS 2.0 feed, releasing
each entry at its ``published`` time on an accelerated clock (``--speed`` simulated seconds per
real second: 720 plays a month in one hour). Each feed answers its first request empty, because
the daemon stores a feed's first poll as history (never alerted). A Slack-compatible endpoint on
the same server records every alert POST. The daemon is the real one (``python -m monitor run``)
with the shipped topics from ``--config``, one Slack channel, and intervals scaled to the clock.

At the end it prints entries stored, matches and alerts per topic, precision and recall of the
alerted articles against the labels (an article attached to an alerted story counts as alerted;
``unjudged`` links are left out of false-alarm counts), false alerts per simulated day, alerts
saved by story grouping, wall time, CPU time and peak memory of the daemon's process tree
(PSS summed over the daemon and its parser processes, so shared pages are not counted twice).

``--workers N`` starts N daemons on one PostgreSQL database (``--database-url
postgresql+psycopg://...``; use a fresh database): each gets its own config file differing only in
``polling.user_agent`` (``monitor-replay-worker-<n>``), so the feed server can tell whose request
it answers, and its own log. The result then adds what running several workers must not break:
duplicate alerts (one article and topic matched twice, a match delivered twice, or one Slack
Idempotency-Key POSTed twice), feeds polled twice within half an interval (a feed's second poll
excepted: the scheduler draws it early on purpose), and each worker's share
of polls (from the feed server) and of matches (from its log's "article matched" lines).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
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

WORKER_AGENT = "monitor-replay-worker-"


@dataclass
class Stream:
    feeds: dict[str, list[Item]]
    titles: dict[str, str]
    start: datetime
    end: datetime


def load_stream(path: Path, feeds_limit: int | None, days: float | None) -> Stream:
    """Read the JSONL stream, grouped by feed; optionally only some feeds / the first days."""
    feeds: dict[str, list[Item]] = defaultdict(list)
    titles: dict[str, str] = {}
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    start = min(_when(r["published"]) for r in rows)
    cutoff = start + timedelta(days=days) if days else None
    keep = sorted({r["feed"] for r in rows})[:feeds_limit] if feeds_limit else None
    for row in rows:
        when = _when(row["published"])
        if (cutoff and when >= cutoff) or (keep is not None and row["feed"] not in keep):
            continue
        feeds[row["feed"]].append(
            Item(
                link=row["link"],
                title=row["title"] or "",
                summary=row["summary"] or "",
                published=when,
            )
        )
        titles[row["feed"]] = row.get("feed_title") or row["feed"]
    end = max(i.published for items in feeds.values() for i in items)
    return Stream(dict(feeds), titles, start, end)


def _when(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class SimClock:
    """Simulated time: frozen at ``start`` until :meth:`restart`, then ``speed`` x real time."""

    def __init__(self, start: datetime, speed: float) -> None:
        self.start, self.speed = start, speed
        self.t0: float | None = None

    def __call__(self) -> datetime:
        if self.t0 is None:
            return self.start
        return self.start + timedelta(seconds=(time.monotonic() - self.t0) * self.speed)

    def restart(self) -> None:
        self.t0 = time.monotonic()


def write_config(
    args: argparse.Namespace,
    workdir: Path,
    feed_urls: list[str],
    slack_url: str,
    worker: int | None = None,
) -> Path:
    """The shipped topics and model, one Slack channel, intervals scaled to the clock; with
    ``worker``, a user agent naming the worker (so the feed server can count its polls)."""
    base, topics = shipped_base(args.config)
    interval = args.interval
    story_window_s = max(60.0, 48 * 3600 / args.speed)  # 48 simulated hours
    data: dict[str, Any] = {
        "database": {"url": args.database_url or f"sqlite:///{workdir / 'replay.db'}"},
        "model": base.get("model", {}),
        "polling": {
            "interval": f"{interval}s",
            "min_interval": "1s",
            "max_interval": f"{interval}s",
            "error_backoff_cap": f"{interval}s",
            "tick": "1s",
            "per_host": 8,
            "concurrency": 32,
            "total_timeout": "30s",
            "parse_timeout": "20s",
            **({"user_agent": f"{WORKER_AGENT}{worker}"} if worker is not None else {}),
        },
        "delivery": {
            "retry_base": "1s",
            "retry_cap": "10s",
            "story_window": f"{story_window_s:.0f}s",
        },
        "logging": {"level": "INFO"},
        "alerts": {"slack": {"type": "slack", "url": slack_url, "mode": "immediate"}},
        "feeds": [{"url": url, "name": url.rsplit("/", 1)[-1]} for url in feed_urls],
        "topics": topics,
    }
    path = workdir / ("config.toml" if worker is None else f"config-{worker}.toml")
    path.write_text(dump_toml(data), encoding="utf-8")
    return path


def score(
    database_url: str, labels: dict[str, list[str]], stream_links: set[str], sim_days: float
) -> dict[str, Any]:
    """Read stored articles, matches and sent deliveries; score alerted articles."""
    from sqlalchemy import select

    from monitor.domain import DeliveryKind
    from monitor.feeds.parse import canonical_link
    from monitor.store import db
    from monitor.store.models import Article, Delivery, Match, Topic

    engine = db.make_engine(database_url, null_pool=True)
    with db.make_session_factory(engine)() as session:
        articles = {a.id: a for a in session.scalars(select(Article))}
        topics = {t.id: t.name for t in session.scalars(select(Topic))}
        matches = list(session.scalars(select(Match)))
        sent = list(
            session.scalars(
                select(Delivery).where(
                    Delivery.status == "sent", Delivery.kind == DeliveryKind.ALERT
                )
            )
        )
    engine.dispose()
    match_by_id = {m.id: m for m in matches}
    alerted_stories = {
        match_by_id[d.match_id].story_id
        for d in sent
        if d.match_id in match_by_id and match_by_id[d.match_id].story_id
    }
    alerted_articles = {
        match_by_id[d.match_id].article_id for d in sent if d.match_id in match_by_id
    }
    alerted_articles |= {m.article_id for m in matches if m.story_id in alerted_stories}
    positive = set(labels.get("positive", [])) & stream_links
    unjudged = set(labels.get("unjudged", []))

    # the daemon stores links without tracking parameters (display_link, canonical_link), so a
    # stream link with ?utm_... is found again through its canonical form; comparing stored
    # links with the stream's as written counted those articles as false alerts and misses
    by_canonical = {canonical_link(link): link for link in stream_links}

    def link_of(article_id: int) -> str:
        article = articles[article_id]
        for candidate in (article.link, article.canonical_link):
            if candidate in stream_links:
                return candidate
        return by_canonical.get(
            article.canonical_link or canonical_link(article.link), article.link
        )

    alerted_links = {link_of(a) for a in alerted_articles if a in articles}
    true_pos = alerted_links & positive
    false_pos = alerted_links - positive - unjudged
    alert_links = [
        link_of(match_by_id[d.match_id].article_id) for d in sent if d.match_id in match_by_id
    ]
    false_alerts = sum(1 for link in alert_links if link not in positive and link not in unjudged)
    per_topic: dict[str, Counter[str]] = defaultdict(Counter)
    for m in matches:
        if not articles.get(m.article_id) or articles[m.article_id].is_history:
            continue
        per_topic[topics.get(m.topic_id, "?")]["matches"] += 1
        per_topic[topics.get(m.topic_id, "?")]["saved_by_story"] += int(
            not m.alerted and m.story_id is not None
        )
    for d in sent:
        if d.match_id in match_by_id:
            per_topic[topics.get(match_by_id[d.match_id].topic_id, "?")]["alerts"] += 1
    judged = len(true_pos) + len(false_pos)
    # articles the matcher had reached when the run stopped: recall among those separates
    # "matched wrongly" from "not matched yet" when the backlog did not drain in time
    processed = {link_of(a.id) for a in articles.values() if a.matched_at is not None}
    positive_processed = positive & processed
    return {
        "entries_stored": len(articles),
        "history_entries": sum(1 for a in articles.values() if a.is_history),
        "per_topic": {k: dict(v) for k, v in per_topic.items()},
        "alerts_sent": len(sent),
        "alerted_articles": len(alerted_links),
        "positives_in_stream": len(positive),
        "true_positives": len(true_pos),
        "false_positives": len(false_pos),
        "precision": len(true_pos) / judged if judged else None,
        "recall": len(true_pos) / len(positive) if positive else None,
        "articles_unmatched_at_stop": sum(1 for a in articles.values() if a.matched_at is None),
        "positives_processed": len(positive_processed),
        "recall_processed": (
            len(true_pos & positive_processed) / len(positive_processed)
            if positive_processed
            else None
        ),
        "false_alerts": false_alerts,
        "false_alerts_per_day": false_alerts / sim_days if sim_days else None,
        "saved_by_story": sum(v["saved_by_story"] for v in per_topic.values()),
        "saved_across_languages": saved_across_languages(matches, articles),
    }


def saved_across_languages(matches: list[Any], articles: dict[int, Any]) -> int:
    """Live matches saved by story grouping whose story holds an article in another language
    (as the feeds declare it): what a multilingual model adds to grouping."""
    languages: dict[int, set[str]] = defaultdict(set)
    for m in matches:
        if m.story_id is not None and m.article_id in articles:
            languages[m.story_id].add(articles[m.article_id].language or "?")
    count = 0
    for m in matches:
        article = articles.get(m.article_id)
        if article is None or article.is_history or m.alerted or m.story_id is None:
            continue
        count += int(bool(languages[m.story_id] - {article.language or "?"}))
    return count


def pending_work(database_url: str) -> tuple[int, int]:
    """(articles not yet matched, deliveries still pending): the daemon is done at (0, 0)."""
    from sqlalchemy import func, select

    from monitor.store import db
    from monitor.store.models import Article, Delivery

    engine = db.make_engine(database_url, null_pool=True)
    try:
        with db.make_session_factory(engine)() as session:
            unmatched = (
                session.scalar(
                    select(func.count())
                    .select_from(Article)
                    .where(Article.matched_at.is_(None), Article.is_history.is_(False))
                )
                or 0
            )
            pending = (
                session.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.status == "pending")
                )
                or 0
            )
    finally:
        engine.dispose()
    return unmatched, pending


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream", required=True, type=Path, help="PATH.jsonl.gz")
    parser.add_argument("--labels", required=True, type=Path, help="PATH.json")
    parser.add_argument(
        "--speed",
        type=float,
        default=720.0,
        help="simulated seconds per real second (720: a month in 1 h)",
    )
    parser.add_argument("--feeds-limit", type=int, default=None, help="only the first N feeds")
    parser.add_argument("--days", type=float, default=None, help="only the first N days")
    parser.add_argument(
        "--interval", type=float, default=20.0, help="real seconds between two polls of a feed"
    )
    parser.add_argument(
        "--config",
        default=str(REPO_ROOT / "config.toml"),
        help="config whose [model] and [[topics]] are used",
    )
    parser.add_argument("--database-url", default="", help="default: SQLite in the work dir")
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="run nothing: score what --database-url holds now (a run stopped early), counting "
        "the stream's entries up to the newest stored article",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="daemon processes on one database (> 1 needs a fresh PostgreSQL --database-url)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=600.0,
        help="seconds to wait after the clock ends for matching and delivery",
    )
    args = parser.parse_args(argv)

    stream = load_stream(args.stream, args.feeds_limit, args.days)
    labels = json.loads(args.labels.read_text(encoding="utf-8"))
    stream_links = {i.link for items in stream.feeds.values() for i in items}
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="monitor-replay-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # one second before the first entry, so nothing is released before the first polls
    clock = SimClock(stream.start - timedelta(seconds=1), args.speed)
    sim_days = (stream.end - stream.start).total_seconds() / 86400 or 1.0
    print(
        f"replay: {sum(len(v) for v in stream.feeds.values())} entries, "
        f"{len(stream.feeds)} feeds, {sim_days:.1f} simulated days at x{args.speed:g} "
        f"(~{sim_days * 86400 / args.speed / 60:.0f} min); work dir {workdir}",
        flush=True,
    )

    if args.score_only:
        return score_only(args, stream, labels)
    if args.workers > 1 and not args.database_url.startswith("postgresql"):
        parser.error(
            "--workers > 1 needs --database-url postgresql+psycopg://... (a fresh database)"
        )

    with LocalServer() as server:
        farm = FeedFarm(server, clock, empty_first=True, window=200)
        urls = [
            farm.add_feed(f"/feed/{n}.xml", items, stream.titles[feed])
            for n, (feed, items) in enumerate(sorted(stream.feeds.items()))
        ]
        server.route("/slack", Reply(body=b"ok", headers={"Content-Type": "text/plain"}))
        database_url = args.database_url or f"sqlite:///{workdir / 'replay.db'}"
        wall0 = time.monotonic()
        if args.workers > 1:
            configs = [
                write_config(args, workdir, urls, server.url("/slack"), worker=n)
                for n in range(1, args.workers + 1)
            ]
            upgrade_database(configs[0], workdir / "upgrade.log")  # once, before any worker
            logs = [(workdir / f"daemon-{n}.log").open("wb") for n in range(1, args.workers + 1)]
        else:
            configs = [write_config(args, workdir, urls, server.url("/slack"))]
            logs = [(workdir / "daemon.log").open("wb")]
        try:
            procs = []
            for n, (c, log) in enumerate(zip(configs, logs, strict=True)):
                if n:  # see wait_started: workers starting at once race on the feeds table
                    wait_started(workdir / f"daemon-{n}.log", procs[-1])
                procs.append(start_daemon(c, log))  # type: ignore[arg-type]
            trees = [ProcessTree(proc.pid) for proc in procs]
            codes = _drive(args, procs, trees, farm, clock, stream, database_url)
        finally:
            for log in logs:
                log.close()
        wall = time.monotonic() - wall0
        slack = server.requests_to("/slack")
        feed_requests = [r for r in server.requests if r.path.startswith("/feed/")]
    cpu = max(sum(t.cpu_s for t in trees), _children_cpu())
    result = score(database_url, labels, stream_links, sim_days)
    result.update(
        wall_s=round(wall, 1),
        cpu_s=round(cpu, 1),
        peak_rss_bytes=_peak_total(trees),
        slack_posts=len(slack),
        daemon_exit=codes[0] if len(codes) == 1 else codes,
        sim_days=round(sim_days, 2),
        speed=args.speed,
        feeds=len(stream.feeds),
        workers=args.workers,
    )
    result.update(
        duplicates(database_url, slack),
        polls_within_half_interval=close_polls(feed_requests, args.interval / 2),
    )
    if args.workers > 1:
        result["per_worker"] = worker_shares(feed_requests, workdir, args.workers)
    _print(result)
    (workdir / "result.json").write_text(json.dumps(result, indent=2))
    return 0


def score_only(args: argparse.Namespace, stream: Stream, labels: dict[str, list[str]]) -> int:
    """Score a database as it is: the positives counted are those the clock had released (up to
    the newest stored article's publication time), per-worker matches from the work dir's logs."""
    from sqlalchemy import func, select

    from monitor.store import db
    from monitor.store.models import Article

    database_url = args.database_url or f"sqlite:///{args.workdir / 'replay.db'}"
    engine = db.make_engine(database_url, null_pool=True)
    with db.make_session_factory(engine)() as session:
        newest = session.scalar(select(func.max(Article.published_at)))
    engine.dispose()
    if newest is None:
        print("no articles stored yet")
        return 1
    newest = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
    links = {i.link for items in stream.feeds.values() for i in items if i.published <= newest}
    sim_days = (newest - stream.start).total_seconds() / 86400 or 1.0
    result = score(database_url, labels, links, sim_days)
    result.update(
        wall_s=0.0,
        cpu_s=0.0,
        peak_rss_bytes=0,
        slack_posts=-1,
        daemon_exit="(still running or stopped; scored as found)",
        sim_days=round(sim_days, 2),
        speed=args.speed,
        feeds=len(stream.feeds),
        workers=args.workers,
        polls_within_half_interval=[],
    )
    result.update(duplicates(database_url, []))
    if args.workers > 1 and args.workdir is not None:
        result["per_worker"] = worker_shares([], args.workdir, args.workers)
    print(f"scored as found: stream entries up to {newest:%m-%d %H:%M} (the newest stored)")
    _print(result)
    return 0


def _drive(
    args: argparse.Namespace,
    procs: list[Any],
    trees: list[ProcessTree],
    farm: FeedFarm,
    clock: SimClock,
    stream: Stream,
    database_url: str,
) -> list[int | None]:
    """Wait for the daemons to start, play the clock to the end, drain, stop; sample meanwhile.
    Stops early when any daemon exits (its exit code says why)."""
    started = False
    last_report = 0.0
    drain_deadline: float | None = None
    while all(proc.poll() is None for proc in procs):
        time.sleep(2.0)
        samples = [tree.sample() for tree in trees]
        sample = samples[0]
        if not started:  # the clock starts when every feed had its (empty) first poll
            started = all(n >= 1 for n in farm.polls.values())
            if started:
                clock.restart()
                print(f"all feeds polled once after {sample.at_s:.0f}s; clock starts", flush=True)
            continue
        now = clock()
        if time.monotonic() - last_report > 60:
            last_report = time.monotonic()
            unmatched, pending = pending_work(database_url)
            print(
                f"[{sample.at_s:6.0f}s] sim {now:%m-%d %H:%M} "
                f"mem={mb(sum(s.rss_bytes for s in samples))} "
                f"cpu={sum(s.cpu_s for s in samples):.0f}s fds={sum(s.fds for s in samples)} "
                f"unmatched={unmatched} pending_deliveries={pending}",
                flush=True,
            )
        if now <= stream.end + timedelta(seconds=args.interval * args.speed * 2):
            continue
        if drain_deadline is None:
            drain_deadline = time.monotonic() + args.drain_timeout
        if pending_work(database_url) == (0, 0) or time.monotonic() > drain_deadline:
            break
    return [stop_daemon(proc) for proc in procs]


def _peak_total(trees: list[ProcessTree]) -> int:
    """Peak of the summed memory of every worker's tree (samples are taken together)."""
    if len(trees) == 1:
        return trees[0].peak_rss
    return max(
        (sum(s.rss_bytes for s in row) for row in zip(*(t.samples for t in trees), strict=False)),
        default=0,
    )


def wait_started(log_path: Path, proc: Any, timeout_s: float = 600.0) -> None:
    """Wait until a worker logged "daemon started" (its config's feeds are in the database).

    Workers started at the same moment on a fresh database all insert the config's feeds, and
    all but one die on the unique URL (found by this bench: exit 1, "duplicate key value
    violates unique constraint uq_feeds_url"); starting them one after the other avoids that
    until the daemon's feed sync tolerates it.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if b"daemon started" in log_path.read_bytes():
            return
        time.sleep(0.5)
    raise SystemExit(f"{log_path}: the worker did not start (exit code {proc.poll()})")


def upgrade_database(config: Path, log_path: Path) -> None:
    """``monitor db upgrade`` once, so concurrent workers never race on the migrations."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with log_path.open("wb") as log:
        subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(config), "db", "upgrade"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )


def duplicates(database_url: str, slack: list[Any]) -> dict[str, int]:
    """What must be 0 with any number of workers: one article and topic matched twice, one
    match delivered (sent) twice on a channel, one Slack Idempotency-Key POSTed twice."""
    from sqlalchemy import func, select

    from monitor.domain import DeliveryKind
    from monitor.store import db
    from monitor.store.models import Delivery, Match

    engine = db.make_engine(database_url, null_pool=True)
    try:
        with db.make_session_factory(engine)() as session:
            double_matches = session.execute(
                select(Match.article_id, Match.topic_id)
                .group_by(Match.article_id, Match.topic_id)
                .having(func.count() > 1)
            ).all()
            double_sent = session.execute(
                select(Delivery.match_id, Delivery.channel)
                .where(Delivery.kind == DeliveryKind.ALERT, Delivery.status == "sent")
                .group_by(Delivery.match_id, Delivery.channel)
                .having(func.count() > 1)
            ).all()
    finally:
        engine.dispose()
    keys = Counter(r.header("Idempotency-Key") or "" for r in slack)
    return {
        "duplicate_matches": len(double_matches),
        "duplicate_deliveries": len(double_sent),
        "duplicate_slack_posts": sum(n - 1 for key, n in keys.items() if key and n > 1),
    }


def close_polls(requests: list[Any], within_s: float) -> list[dict[str, Any]]:
    """Requests to one feed less than ``within_s`` after the previous one (by anyone), each with
    the feed, the gap, who asked, and ``nth``: 2 when the later one is the feed's second poll.

    A second poll close to the first is the scheduler's doing, not a double poll: after a
    feed's first success it draws the delay anywhere in [min_interval, interval] (so feeds
    added together spread out; monitor/feeds/schedule.py). Any later close pair, and above all
    one by two different workers, means a feed was polled twice in one interval."""
    by_feed: dict[str, list[Any]] = defaultdict(list)
    for r in requests:
        by_feed[r.path.split("?", 1)[0]].append(r)
    close = []
    for feed, polls in by_feed.items():
        polls.sort(key=lambda r: r.at)
        for nth, (a, b) in enumerate(itertools.pairwise(polls), start=2):
            if b.at - a.at < within_s:
                agents = [(r.header("User-Agent") or "").removeprefix(WORKER_AGENT) for r in (a, b)]
                close.append(
                    {"feed": feed, "gap_s": round(b.at - a.at, 2), "workers": agents, "nth": nth}
                )
    return close


def worker_shares(requests: list[Any], workdir: Path, workers: int) -> dict[str, dict[str, int]]:
    """Per worker: feed polls (by user agent, at the feed server) and live matches, articles
    scored (from its log)."""
    polls = Counter((r.header("User-Agent") or "").removeprefix(WORKER_AGENT) for r in requests)
    shares: dict[str, dict[str, int]] = {}
    for n in range(1, workers + 1):
        text = (workdir / f"daemon-{n}.log").read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines()
        matched = [ln for ln in lines if "article matched" in ln]
        scored = sum(
            int(m.group(1))
            for ln in lines
            if "articles matched" in ln and (m := re.search(r"scored=(\d+)", ln))
        )
        shares[str(n)] = {
            "polls": polls.get(str(n), 0),
            "matches": sum(1 for ln in matched if "history=False" in ln),
            "history_matches": sum(1 for ln in matched if "history=True" in ln),
            "articles_scored": scored,
        }
    return shares


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _print(r: dict[str, Any]) -> None:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    print("\n=== replay result ===")
    print(f"feeds {r['feeds']}, simulated days {r['sim_days']}, speed x{r['speed']:g}")
    print(f"entries stored      {r['entries_stored']} (history {r['history_entries']})")
    for topic, counts in sorted(r["per_topic"].items()):
        print(
            f"topic {topic:22s} matches {counts.get('matches', 0):5d}  "
            f"alerts {counts.get('alerts', 0):4d}  saved by story "
            f"{counts.get('saved_by_story', 0):4d}"
        )
    print(f"alerts sent         {r['alerts_sent']} (Slack POSTs received {r['slack_posts']})")
    print(f"alerted articles    {r['alerted_articles']} (incl. story members)")
    print(f"precision           {pct(r['precision'])}  (target >= 0.9)")
    print(
        f"recall              {pct(r['recall'])}  ({r['true_positives']} of "
        f"{r['positives_in_stream']} positives; target >= 0.9)"
    )
    print(
        f"recall (matched)    {pct(r['recall_processed'])}  (of {r['positives_processed']} "
        f"positives the matcher reached; {r['articles_unmatched_at_stop']} articles "
        "still unmatched at stop)"
    )
    print(
        f"false alerts/day    {pct(r['false_alerts_per_day'])}  ({r['false_alerts']} in all; "
        "target <= 1)"
    )
    print(
        f"saved by story      {r['saved_by_story']} ({r['saved_across_languages']} joined a "
        "story with articles in another language)"
    )
    print(f"wall time           {r['wall_s']:.0f} s")
    print(f"CPU time            {r['cpu_s']:.0f} s")
    print(f"peak memory (PSS)   {mb(r['peak_rss_bytes'])}  (target <= 1024 MB)")
    print(f"daemon exit code    {r['daemon_exit']}")
    print(
        f"duplicates          matches {r['duplicate_matches']}, deliveries "
        f"{r['duplicate_deliveries']}, Slack POSTs {r['duplicate_slack_posts']} (must be 0)"
    )
    close = r["polls_within_half_interval"]
    spread = [c for c in close if c.get("nth") == 2]
    later = [c for c in close if c.get("nth") != 2]
    across = [c for c in later if len(set(c["workers"])) > 1]
    print(
        f"feeds polled twice within half an interval: {len(later)} (must be 0; "
        f"{len(across)} of them by two different workers), besides {len(spread)} second polls "
        "drawn early on purpose (the first delay is spread over [min_interval, interval])"
    )
    for item in (across or later)[:10]:
        print(
            f"  {item['feed']} poll {item.get('nth', '?')}: {item['gap_s']} s after the previous, "
            f"by workers {item['workers']}"
        )
    for worker, share in sorted(r.get("per_worker", {}).items()):
        print(
            f"worker {worker}: polls {share['polls']}, live matches {share['matches']}, "
            f"history matches {share['history_matches']}, articles scored {share['articles_scored']}"
        )


if __name__ == "__main__":
    sys.exit(main())
