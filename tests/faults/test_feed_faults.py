"""Feed servers that fail and feeds that attack the parser: the daemon keeps running, records
each failure on the feed's row, recovers when the server does, and stores every good entry once."""

from __future__ import annotations

import contextlib
import gzip
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.store.models import Article
from tests.faults.conftest import StartDaemon
from tests.support.daemonproc import (
    MODEL_WAIT_S,
    Db,
    config_text,
    wait_until,
)
from tests.support.faults import (
    AlertReceiver,
    FeedFarm,
    Item,
    hostile_billion_laughs,
    hostile_external_entity,
    hostile_gzip_bomb,
    hostile_huge_body,
    hostile_invalid_encoding,
    hostile_slow_author,
    rss,
    sequence,
)
from tests.support.httpserver import LocalServer, Reply

WriteConfig = Callable[..., Path]


def _items(name: str, start: datetime) -> list[Item]:
    """Two ordinary entries and one on the test topic, published just after the first poll."""
    return [
        Item(
            f"http://news.example/{name}/1",
            f"Harbour reopens after storm ({name})",
            "Boats are back in the harbour.",
            start,
        ),
        Item(
            f"http://news.example/{name}/2",
            f"Council approves the rail budget ({name})",
            "The vote was close.",
            start + timedelta(seconds=1),
        ),
        Item(
            f"http://news.example/{name}/nk",
            f"North Korea sends artillery shells to Russia ({name})",
            "Kim Jong Un agreed to supply Putin with weapons for the war.",
            start + timedelta(seconds=2),
        ),
    ]


def test_feed_server_errors_are_recorded_and_recovered(
    server: LocalServer, start_daemon: StartDaemon, write_config: WriteConfig, sqlite_url: str
) -> None:
    farm = FeedFarm(server, lambda: datetime.now(UTC))
    start = datetime.now(UTC) + timedelta(seconds=4)
    truncated = rss(_items("x", start))
    faults = {
        "ok": [],
        "e500": [Reply(status=500, body=b"boom")] * 2,
        "e503": [Reply(status=503, headers={"Retry-After": "1"})] * 2,
        "reset": [Reply(reset=True)] * 2,
        "slow": [Reply(delay_s=4.0, body=truncated, headers={"Content-Type": "text/xml"})],
        "truncated": [Reply(body=truncated[: len(truncated) // 2], declared_length=len(truncated))]
        * 2,
    }
    urls, links = [], []
    for name, replies in faults.items():
        path = f"/{name}.xml"
        items = _items(name, start)
        urls.append(farm.add_feed(path, items))
        links += [i.link for i in items]
        # the faults come first (before the empty history poll), then the feed behaves
        server.route(path, sequence(replies, then=server.routes[path]))
    slack = AlertReceiver(server)
    config = write_config(config_text(sqlite_url, urls, slack_url=slack.url))
    daemon = start_daemon(config)
    store = Db(sqlite_url)
    wait_until(
        lambda: sorted(store.article_links()) == sorted(links),
        60,
        "every entry of every feed stored",
        [daemon],
    )
    daemon.assert_alive()
    assert store.count(Article) == len(links)  # each entry once
    assert store.count(Article, Article.is_history.is_(True)) == 0
    failures = [line for line in daemon.output().splitlines() if "feed poll failed" in line]
    for name in faults:
        recorded = any(f"/{name}.xml" in line for line in failures)
        assert recorded == (name != "ok"), f"{name}: failure logged {recorded}"
    for feed in store.feeds():
        assert feed.consecutive_errors == 0, feed.url
        assert feed.last_success_at is not None, feed.url
    on_topic = [link for link in links if link.endswith("/nk")]
    wait_until(
        lambda: all(slack.delivered(on_topic).values()),
        MODEL_WAIT_S,
        "an alert per on-topic entry",
        [daemon],
    )
    assert slack.delivered(on_topic) == dict.fromkeys(on_topic, 1)
    assert daemon.stop() == 0
    daemon.assert_clean_log()
    store.close()


def _vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def test_hostile_feeds_do_not_hurt_the_daemon(
    server: LocalServer,
    start_daemon: StartDaemon,
    write_config: WriteConfig,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    good_item = Item("http://news.example/good/1", "Good entry", "fine")
    xml = {"Content-Type": "application/rss+xml"}
    hostile = {
        "laughs": Reply(body=hostile_billion_laughs(), headers=xml),
        "xxe": Reply(body=hostile_external_entity(str(secret)), headers=xml),
        "bomb": Reply(body=hostile_gzip_bomb(200), headers={**xml, "Content-Encoding": "gzip"}),
        "huge": Reply(body=hostile_huge_body(100), headers=xml),
        "encoding": Reply(
            body=hostile_invalid_encoding(Item("http://news.example/enc/1", "Still readable", "x")),
            headers=xml,
        ),
        "author": Reply(
            body=hostile_slow_author(Item("http://news.example/author/1", "Author entry", "x")),
            headers=xml,
        ),
        "good": Reply(body=rss([good_item]), headers=xml),
    }
    urls = []
    for name, reply in hostile.items():
        server.route(f"/{name}.xml", reply)
        urls.append(server.url(f"/{name}.xml"))
    config = write_config(config_text(sqlite_url, urls, interval_s=3.0, topic=False))
    daemon = start_daemon(config)
    store = Db(sqlite_url)

    def every_feed_polled_twice() -> bool:
        return all(len(server.requests_to(f"/{name}.xml")) >= 2 for name in hostile)

    wait_until(every_feed_polled_twice, 90, "every hostile feed polled twice", [daemon])
    daemon.assert_alive()
    links = store.article_links()
    assert good_item.link in links
    assert "http://news.example/enc/1" in links, "a bad byte must not lose the good entries"
    with store.sessions() as session:
        for article in session.query(Article):
            text = article.title + article.summary
            assert "TOP-SECRET" not in text, "external entity was resolved"
            assert len(text) < 100_000, "entity expansion or a huge body got stored"
    by_url = {f.url: f for f in store.feeds()}
    for name in ("huge", "bomb"):
        feed = by_url[server.url(f"/{name}.xml")]
        assert feed.last_error, f"{name}: expected an error on the feed row"
    assert _vm_hwm_kb(daemon.pid) < 1024 * 1024, "the daemon's peak memory passed 1 GB"
    assert daemon.stop() == 0
    store.close()
    assert gzip  # the bomb really is gzip (hostile_gzip_bomb), decoded by the fetcher


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process from /proc, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = text.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def _children(pid: int) -> dict[int, str]:
    """Every process whose parent is ``pid``, with its command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (_proc_stat(int(entry.name)) or ("", 0))[1] == pid:
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except (FileNotFoundError, ProcessLookupError):
                continue
    return {child: cmdline.decode(errors="replace") for child, cmdline in found.items()}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_parse_workers_and_resource_tracker_exit_when_the_daemon_is_killed(
    server: LocalServer,
    start_daemon: StartDaemon,
    write_config: WriteConfig,
    sqlite_url: str,
) -> None:
    server.route("/feed.xml", Reply(body=rss([Item("http://news.example/w/1", "One", "x")])))
    config = write_config(
        config_text(sqlite_url, [server.url("/feed.xml")], interval_s=3.0, topic=False)
    )
    daemon = start_daemon(config)
    children: dict[int, str] = {}

    def parse_worker_started() -> bool:
        children.update(_children(daemon.pid))
        return any("spawn_main" in cmdline for cmdline in children.values())

    try:
        wait_until(parse_worker_started, 60, "a parse worker process", [daemon])
        assert daemon.proc is not None
        os.kill(daemon.pid, signal.SIGKILL)  # the daemon alone, as the OOM killer would
        daemon.proc.wait(timeout=30)

        def children_gone() -> bool:
            return all((_proc_stat(pid) or ("Z", 0))[0] == "Z" for pid in children)

        assert any("resource_tracker" in c for c in children.values()), children
        wait_until(children_gone, 20, f"the daemon's children to exit: {children}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGKILL)  # whatever is left of its process group
