"""The database goes away under the daemon: PostgreSQL connections killed during cycles, and
the disk under the SQLite file filling up. The daemon keeps running, reports a clear error,
and the data it stored stays intact."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from monitor.store.models import Article
from tests.faults.conftest import StartDaemon
from tests.faults.test_crash_and_reload import publish_over_time
from tests.support.daemonproc import (
    MODEL_WAIT_S,
    Db,
    config_text,
    wait_until,
)
from tests.support.faults import AlertReceiver, FeedFarm, Item, rss
from tests.support.httpserver import LocalServer, Recorded, Reply

WriteConfig = Callable[..., Path]


def terminate_connections(pg_url: str) -> int:
    """``pg_terminate_backend`` every connection to the test database (not the server)."""
    name = pg_url.rsplit("/", 1)[1]
    admin = pg_url.rsplit("/", 1)[0].replace("+psycopg", "") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


def test_postgresql_connections_killed_during_cycles(
    pg_url: str, server: LocalServer, start_daemon: StartDaemon, write_config: WriteConfig
) -> None:
    rng = random.Random(11)
    farm = FeedFarm(server, lambda: datetime.now(UTC))
    links, on_topic = publish_over_time(farm, 5, 15, 1.0, datetime.now(UTC) + timedelta(seconds=3))
    slack = AlertReceiver(server)
    urls = [server.url(f"/feed{f}.xml") for f in range(5)]
    config = write_config(config_text(pg_url, urls, slack_url=slack.url, interval_s=1.0))
    daemon = start_daemon(config)
    killed = 0
    for _ in range(6):
        time.sleep(rng.uniform(0.5, 2.5))
        killed += terminate_connections(pg_url)
        daemon.assert_alive()
    assert killed, "no daemon connection was there to kill"
    store = Db(pg_url)
    wait_until(
        lambda: sorted(store.article_links()) == sorted(links),
        60,
        "every published entry stored after the connection losses",
        [daemon],
    )
    assert store.count(Article) == len(links)
    wait_until(
        lambda: all(slack.delivered(on_topic).values()),
        MODEL_WAIT_S,
        "an alert per on-topic entry",
        [daemon],
    )
    time.sleep(2)
    assert slack.delivered(on_topic) == dict.fromkeys(on_topic, 1)
    store.close()
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
