"""The database goes away under the daemon: PostgreSQL connections killed during cycles, and
the disk under the SQLite file filling up. The daemon keeps running, reports a clear error,
and the data it stored stays intact."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from monitor.store.matches import record_feedback
from monitor.store.models import Article, Delivery, Match
from tests.faults.conftest import StartDaemon
from tests.support.daemonproc import (
    MODEL_WAIT_S,
    DaemonProc,
    Db,
    config_text,
    wait_until,
)
from tests.support.faults import AlertReceiver, FeedFarm, Item, rss
from tests.support.httpserver import LocalServer, Recorded, Reply

WriteConfig = Callable[..., Path]


class BackendKiller:
    """Kills the daemon's PostgreSQL backends at a chosen point of its work, on a condition.

    A table the daemon is about to write is locked (``SHARE``), so the stage doing that write
    waits on the lock in the middle of its transaction; once it is seen waiting, every client
    backend of the database but ours is terminated (``pg_terminate_backend``), then the lock
    goes. The ``deliveries`` table is always locked too, and only while no alert is being
    sent: a send that already reached Slack but is not recorded yet is the one window where a
    lost connection resends an alert (documented in ``pipeline/delivery.py``; Slack does not
    dedupe), so a test counting Slack messages exactly must not kill there.
    """

    LOCK_TIMEOUT = "300ms"  # ours gives way, so a lock cycle with the daemon never forms

    def __init__(self, pg_url: str, daemons: Sequence[DaemonProc]) -> None:
        self.conninfo = pg_url.replace("+psycopg", "")
        self.daemons = daemons
        self.kills = 0  # kills that terminated at least one backend
        self.terminated = 0  # backends terminated in all

    def kill_during(self, table: str, statement: str, timeout_s: float) -> int:
        """Kill every daemon backend while one waits to run ``statement`` (e.g. "INSERT INTO
        embeddings") on ``table``; returns how many backends were terminated."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for daemon in self.daemons:
                daemon.assert_alive()
            killed = self._attempt(table, statement, min(5.0, deadline - time.monotonic()))
            if killed:
                self.kills += 1
                self.terminated += killed
                return killed
        raise AssertionError(f"timed out after {timeout_s}s waiting to kill during: {statement}")

    def _attempt(self, table: str, statement: str, hold_s: float) -> int:
        with psycopg.connect(self.conninfo) as conn:
            conn.execute(f"SET lock_timeout = '{self.LOCK_TIMEOUT}'")
            try:
                conn.execute(
                    f"LOCK TABLE {', '.join(dict.fromkeys(['deliveries', table]))} IN SHARE MODE"
                )
            except psycopg.errors.LockNotAvailable:
                return 0
            row = conn.execute("SELECT count(*) FROM deliveries WHERE status = 'sending'")
            if _first(row.fetchone()):
                return 0  # an alert is on its way: let it be recorded first
            if not _poll(lambda: self._waiting(conn, statement), hold_s):
                return 0
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            ).fetchone()
            conn.rollback()
            return _first(killed)

    @staticmethod
    def _waiting(conn: psycopg.Connection[Any], statement: str) -> bool:
        conn.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees one snapshot
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ILIKE %s",
            (statement + "%",),
        ).fetchone()
        return _first(row) > 0


def _first(row: tuple[Any, ...] | None) -> int:
    return int(row[0]) if row else 0


def _poll(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """True as soon as ``predicate`` holds; False when ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)  # polling interval of the condition, not a wait for an event
    return False


def publish_round(farm: FeedFarm, feeds: int, round_no: int) -> tuple[list[str], list[str]]:
    """Publish, now, three entries per feed, one of them on the test topic. (all, on-topic)"""
    links, on_topic = [], []
    now = datetime.now(UTC)
    for f in range(feeds):
        for n in range(3):
            link = f"http://news.example/r{round_no}/{f}/{n}"
            if n == 0:
                item = Item(
                    link,
                    f"North Korea sends shells to Russia, report {round_no}-{f}",
                    "Kim Jong Un supplies Putin's war with artillery.",
                    now,
                )
                on_topic.append(link)
            else:
                item = Item(link, f"Market day {round_no}-{n} in town {f}", "Stalls.", now)
            farm.publish(f"/feed{f}.xml", item)
            links.append(link)
    return links, on_topic


def start_pg_daemon(
    pg_url: str,
    server: LocalServer,
    start_daemon: StartDaemon,
    write_config: WriteConfig,
    feeds: int,
) -> tuple[FeedFarm, AlertReceiver, DaemonProc]:
    """A daemon on PostgreSQL polling ``feeds`` empty feeds, alerting a Slack receiver; returns
    once every feed had its first (history) poll, so every entry published later is new."""
    farm = FeedFarm(server, lambda: datetime.now(UTC))
    urls = [farm.add_feed(f"/feed{f}.xml") for f in range(feeds)]
    slack = AlertReceiver(server)
    config = write_config(config_text(pg_url, urls, slack_url=slack.url, interval_s=1.0))
    daemon = start_daemon(config)
    wait_until(lambda: all(farm.polls.values()), 60, "the first poll of every feed", [daemon])
    return farm, slack, daemon


def wait_all_alerted(
    store: Db, slack: AlertReceiver, links: list[str], on_topic: list[str], daemon: DaemonProc
) -> None:
    """Every entry stored and matched, every on-topic one alerted and its delivery recorded
    as sent; once nothing is left to send, the receiver's counts are final."""
    wait_until(
        lambda: (
            sorted(store.article_links()) == sorted(links)
            and store.count(Article, Article.matched_at.is_(None)) == 0
        ),
        MODEL_WAIT_S,
        "every published entry stored and matched",
        [daemon],
    )
    wait_until(
        lambda: store.count(Delivery) == len(on_topic) and store.sent() == len(on_topic),
        120,
        "an alert per on-topic entry, recorded as sent",
        [daemon],
    )
    assert store.count(Match) == len(on_topic)
    assert slack.delivered(on_topic) == dict.fromkeys(on_topic, 1)


def test_postgresql_connections_killed_during_cycles(
    pg_url: str, server: LocalServer, start_daemon: StartDaemon, write_config: WriteConfig
) -> None:
    # Every connection is killed in the middle of each stage's write, twice: while polling
    # stores new entries, while matching stores vectors, while matching queues alerts.
    farm, slack, daemon = start_pg_daemon(pg_url, server, start_daemon, write_config, 3)
    killer = BackendKiller(pg_url, [daemon])
    links: list[str] = []
    on_topic: list[str] = []
    for round_no in range(2):
        published, alerting = publish_round(farm, 3, round_no)
        links += published
        on_topic += alerting
        killer.kill_during("articles", "INSERT INTO articles", 60)
        killer.kill_during("embeddings", "INSERT INTO embeddings", MODEL_WAIT_S)
        killer.kill_during("deliveries", "INSERT INTO deliveries", MODEL_WAIT_S)
    assert killer.kills == 6
    store = Db(pg_url)
    try:
        wait_all_alerted(store, slack, links, on_topic, daemon)
    finally:
        store.close()
    assert "DetachedInstanceError" not in daemon.output()
    assert daemon.stop() == 0


def test_matching_survives_15_connection_kills_and_a_feedback_click(
    pg_url: str, server: LocalServer, start_daemon: StartDaemon, write_config: WriteConfig
) -> None:
    # The topic models are built inside a match transaction; a kill there rolls it back. Kills
    # land after the build (the batch waits to store its vectors), first on the daemon's very
    # first batch, then right after a feedback click, which makes the next batch rebuild them.
    farm, slack, daemon = start_pg_daemon(pg_url, server, start_daemon, write_config, 2)
    killer = BackendKiller(pg_url, [daemon])
    store = Db(pg_url)
    try:
        links, on_topic = publish_round(farm, 2, 0)
        for _ in range(7):
            killer.kill_during("embeddings", "INSERT INTO embeddings", MODEL_WAIT_S)
        wait_until(lambda: store.count(Match) > 0, 120, "a first match", [daemon])
        with store.sessions() as session:
            match_id = session.scalars(select(Match.id).order_by(Match.id)).first()
            assert match_id is not None
            record_feedback(session, match_id, relevant=True)  # as `monitor feedback` does
            session.commit()
        more, more_on_topic = publish_round(farm, 2, 1)
        links, on_topic = links + more, on_topic + more_on_topic
        for _ in range(8):
            killer.kill_during("embeddings", "INSERT INTO embeddings", 120)
        assert killer.kills == 15
        wait_all_alerted(store, slack, links, on_topic, daemon)
    finally:
        store.close()
    assert "DetachedInstanceError" not in daemon.output()
    assert daemon.stop() == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs (needs root; skipped otherwise), unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_sqlite_disk_full(
    server: LocalServer, start_daemon: StartDaemon, write_config: WriteConfig, small_disk: Path
) -> None:
    counter = iter(range(1_000_000))

    def fat_feed(_request: Recorded) -> Reply:
        # 40 new entries of ~6 KB on every poll: the 3 MB disk fills within a few polls
        batch = next(counter)
        items = [
            Item(
                f"http://news.example/fat/{batch}/{n}",
                f"Entry {batch}-{n}",
                "word " * 1200,
                datetime.now(UTC),
            )
            for n in range(40)
        ]
        return Reply(body=rss(items), headers={"Content-Type": "application/rss+xml"})

    server.route("/fat.xml", fat_feed)
    db_path = small_disk / "monitor.db"
    url = f"sqlite:///{db_path}"
    config = write_config(config_text(url, [server.url("/fat.xml")], topic=False, interval_s=1.0))
    daemon = start_daemon(config)
    wait_until(lambda: "disk is full" in daemon.output(), 60, "a clear disk-full error", [daemon])
    time.sleep(3)  # a few more ticks against the full disk
    daemon.assert_alive()
    assert daemon.stop() == 0
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
    assert stored > 0
