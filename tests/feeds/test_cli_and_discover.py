"""`monitor run --once`, `monitor feeds list` and `monitor feeds add` with feed discovery,
run as a user runs them (a subprocess) against a loopback server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import PollingConfig
from monitor.errors import ParseError
from monitor.feeds.discover import discover, feed_links
from tests.feeds.conftest import RSS, fixture
from tests.support.httpserver import LocalServer, Reply


def _monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        check=False,
    )


def test_run_once_then_feeds_list_shows_health(
    server: LocalServer, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    server.route("/ok.xml", Reply(body=fixture("rss20.xml"), headers=RSS))
    server.route("/broken.xml", Reply(status=500))
    server.route("/gone.xml", Reply(status=410))
    config = write_config(f"""
        [database]
        url = "sqlite:///{tmp_path / "cli.db"}"
        [polling]
        parse_workers = 1
        [[feeds]]
        url = "{server.url("/ok.xml")}"
        [[feeds]]
        url = "{server.url("/broken.xml")}"
        [[feeds]]
        url = "{server.url("/gone.xml")}"
    """)
    run = _monitor(config, "run", "--once")
    assert run.returncode == 0, run.stderr
    assert "polled 3 feeds (2 failed" in run.stdout
    assert "stored 2 articles" in run.stdout
    # each failure is one key=value log line naming the feed and its error
    failures = [line for line in run.stderr.splitlines() if "feed poll failed" in line]
    assert len(failures) == 2
    assert any(
        "url=" + server.url("/broken.xml") in line and "HTTP 500" in line for line in failures
    )

    listing = _monitor(config, "feeds", "list", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    health = {row["url"]: row for row in json.loads(listing.stdout)}
    assert health[server.url("/ok.xml")]["health"] == "ok"
    assert health[server.url("/ok.xml")]["last_success"] is not None
    assert health[server.url("/broken.xml")]["health"].startswith("erroring (1x): HTTP 500")
    assert health[server.url("/gone.xml")]["health"].startswith("disabled: ")
    assert "410" in health[server.url("/gone.xml")]["health"]
    assert health[server.url("/gone.xml")]["next_poll"] is None


def test_feeds_add_discovers_the_feed_of_a_page(
    server: LocalServer, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    server.route(
        "/blog/",
        Reply(
            body=fixture("not_a_feed.html"), headers={"Content-Type": "text/html; charset=utf-8"}
        ),
    )
    server.route(
        "/feeds/atom.xml",
        Reply(body=fixture("atom10.xml"), headers={"Content-Type": "application/atom+xml"}),
    )
    config = write_config(f"""
        [database]
        url = "sqlite:///{tmp_path / "add.db"}"
    """)
    added = _monitor(config, "feeds", "add", server.url("/blog/"))
    assert added.returncode == 0, added.stderr
    assert server.url("/feeds/atom.xml") in added.stdout
    missing = _monitor(config, "feeds", "add", server.url("/nothing"))
    assert missing.returncode == 2
    assert "404" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_discover_keeps_feed_urls_and_rejects_plain_pages(server: LocalServer) -> None:
    server.route("/rss", Reply(body=fixture("rss20.xml"), headers={"Content-Type": "text/xml"}))
    server.route(
        "/plain", Reply(body=b"<html><body>hi</body></html>", headers={"Content-Type": "text/html"})
    )
    config = PollingConfig()
    assert discover(server.url("/rss"), config) == server.url("/rss")
    with pytest.raises(ParseError, match="neither a feed"):
        discover(server.url("/plain"), config)


def test_feed_links_in_page_order_resolved() -> None:
    links = feed_links(fixture("not_a_feed.html").decode(), "https://site.example/blog/")
    assert links == ["https://site.example/feeds/atom.xml", "https://site.example/rss.xml"]
