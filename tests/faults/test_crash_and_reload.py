"""``kill -9`` at random points of a cycle, then a restart: nothing stored twice, nothing lost,
no corruption, every alert delivered once. And SIGHUP with a broken config keeps the old one."""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.store.models import Article, Feed
from tests.faults.conftest import StartDaemon
from tests.support.daemonproc import (
    MODEL_WAIT_S,
    Db,
    config_text,
    wait_until,
)
from tests.support.faults import AlertReceiver, FeedFarm, Item
from tests.support.httpserver import LocalServer

WriteConfig = Callable[..., Path]


def publish_over_time(
    farm: FeedFarm, feeds: int, seconds: float, every_s: float, start: datetime
) -> tuple[list[str], list[str]]:
    """Items published during the run; every fifth one on the test topic. (all, on-topic)."""
    links, on_topic = [], []
    for f in range(feeds):
        items = []
        for n in range(int(seconds / every_s)):
            when = start + timedelta(seconds=n * every_s + f * 0.1)
            link = f"http://news.example/{f}/{n}"
            if n % 5 == 4:
                items.append(
                    Item(
                        link,
                        f"North Korea sends shells to Russia, report {f}-{n}",
                        "Kim Jong Un supplies Putin's war with artillery.",
                        when,
                    )
                )
                on_topic.append(link)
            else:
                items.append(Item(link, f"Market day number {n} in town {f}", "Stalls.", when))
            links.append(link)
        farm.add_feed(f"/feed{f}.xml", items)
    return links, on_topic


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_kill_9_at_random_points_then_restart(
    server: LocalServer, start_daemon: StartDaemon, write_config: WriteConfig, tmp_path: Path
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    db_path = tmp_path / "monitor.db"
    url = f"sqlite:///{db_path}"
    farm = FeedFarm(server, lambda: datetime.now(UTC))
    links, on_topic = publish_over_time(farm, 5, 20, 1.5, datetime.now(UTC) + timedelta(seconds=3))
    slack = AlertReceiver(server)
    feed_urls = [server.url(f"/feed{f}.xml") for f in range(5)]
    config = write_config(config_text(url, feed_urls, slack_url=slack.url, interval_s=1.0))
    daemon = start_daemon(config)
    store = Db(url)
    wait_until(
        lambda: store.count(Feed, Feed.first_success_at.is_not(None)) == 5,
        30,
        "the first (history) poll of every feed",
        [daemon],
    )
    for _ in range(3):
        time.sleep(rng.uniform(0.2, 4.0))  # somewhere in a poll, match or delivery
        daemon.kill9()
        assert integrity(db_path) == "ok", f"seed {seed}"
        daemon = start_daemon(config)
    wait_until(
        lambda: sorted(store.article_links()) == sorted(links),
        60,
        f"every published entry stored (seed {seed})",
        [daemon],
    )
    assert store.count(Article) == len(links), f"an entry was stored twice (seed {seed})"
    wait_until(
        lambda: all(slack.delivered(on_topic).values()),
        MODEL_WAIT_S,
        "an alert per on-topic entry",
        [daemon],
    )
    time.sleep(2)  # a duplicate would show up now
    assert slack.delivered(on_topic) == dict.fromkeys(on_topic, 1), f"seed {seed}"
    assert daemon.stop() == 0
    assert integrity(db_path) == "ok"
    store.close()


def test_sighup_with_a_broken_config_keeps_the_running_one(
    server: LocalServer, start_daemon: StartDaemon, write_config: WriteConfig, sqlite_url: str
) -> None:
    farm = FeedFarm(server, lambda: datetime.now(UTC))
    first, second = farm.add_feed("/a.xml"), farm.add_feed("/b.xml")
    good = config_text(sqlite_url, [first], topic=False, interval_s=1.0)
    config = write_config(good)
    daemon = start_daemon(config)
    wait_until(lambda: farm.polls["/a.xml"] >= 2, 30, "feed a polled", [daemon])

    config.write_text(good + "\n[polling\ninterval = fast\n")  # invalid TOML
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: "config reload failed" in daemon.output(), 20, "reload refused", [daemon])
    polls = farm.polls["/a.xml"]
    wait_until(lambda: farm.polls["/a.xml"] >= polls + 2, 20, "old config still polling", [daemon])
    config.write_text(good.replace('interval = "1.0s"', 'interval = "fast"'))  # invalid value
    daemon.signal(signal.SIGHUP)
    wait_until(
        lambda: daemon.output().count("config reload failed") >= 2,
        20,
        "second reload refused",
        [daemon],
    )
    assert farm.polls["/b.xml"] == 0
    # an enabled channel whose ${VAR} is not set: the daemon sends on it, so it is refused too
    config.write_text(
        config_text(sqlite_url, [first, second], topic=False, interval_s=1.0)
        + '\n[alerts.hook]\ntype = "webhook"\nurl = "${NO_SUCH_HOOK_URL}"\n'
    )
    daemon.signal(signal.SIGHUP)
    wait_until(
        lambda: daemon.output().count("config reload failed") >= 3,
        20,
        "reload with an unset channel variable refused",
        [daemon],
    )
    assert "NO_SUCH_HOOK_URL is not set" in daemon.output()
    assert farm.polls["/b.xml"] == 0

    config.write_text(config_text(sqlite_url, [first, second], topic=False, interval_s=1.0))
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: farm.polls["/b.xml"] >= 1, 20, "the new feed polled after reload", [daemon])
    assert "config reloaded" in daemon.output()
    assert daemon.stop() == 0
    daemon.assert_clean_log()
