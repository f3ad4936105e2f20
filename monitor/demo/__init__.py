"""`monitor demo`: the whole product on sample feeds, offline, in a temporary folder.

A tiny HTTP server on 127.0.0.1 serves the sample feeds shipped next to this file (written for
this project: a few items about North Korea's support for Russia's war among ordinary news, in
English and Indonesian). The pipeline runs twice against a temporary SQLite database:

1. the first poll stores what each feed already carried (history, as on any first poll);
2. the feeds then "publish" their new items, the feeds are made due, and a second cycle polls,
   matches and delivers: the console channel prints the alerts.

Then the matches are listed the way ``monitor matches`` shows them.
"""

from __future__ import annotations

import re
import tempfile
import textwrap
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

FEEDS = {
    "world-en.xml": ("Demo World Desk", "en", "application/rss+xml"),
    "sanctions-en.xml": ("Demo Policy Wire", "en", "application/atom+xml"),
    "dunia-id.xml": ("Demo Berita Dunia", "id", "application/rss+xml"),
}
_NEW_ITEM = re.compile(r"<(item|entry)>(?:(?!</\1>).)*?\$\{new_\d+\}.*?</\1>\s*", re.S)


def feed_text(name: str) -> str:
    return resources.files("monitor.demo").joinpath("feeds", name).read_text(encoding="utf-8")


def render_feed(name: str, *, published: bool, now: datetime) -> bytes:
    """The feed as served: before publishing, the items dated ``${new_N}`` are left out."""
    text = feed_text(name)
    if not published:
        text = _NEW_ITEM.sub("", text)
    atom = "<feed" in text
    stamps: dict[str, str] = {}
    for n in range(1, 10):
        for prefix, ago in (("old", timedelta(days=2, hours=n)), ("new", timedelta(minutes=n))):
            when = now - ago
            stamps[f"{prefix}_{n}"] = when.isoformat() if atom else format_datetime(when)
    return Template(text).safe_substitute(stamps).encode("utf-8")


class DemoFeedServer:
    """Serves the sample feeds on an ephemeral loopback port; ``publish()`` adds the new items."""

    def __init__(self) -> None:
        self.published = False
        self.now = datetime.now(UTC)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                if name not in FEEDS:
                    self.send_error(404)
                    return
                body = render_feed(name, published=server.published, now=server.now)
                self.send_response(200)
                self.send_header("Content-Type", FEEDS[name][2] + "; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{name}"

    def publish(self) -> None:
        self.published = True
        self.now = datetime.now(UTC)

    def __enter__(self) -> DemoFeedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def demo_config_text(server: DemoFeedServer, folder: Path) -> str:
    """A config with the demo feeds, the shipped topics (defined by descriptions) and console."""
    feeds = "".join(
        f'\n[[feeds]]\nname = "{title}"\nurl = "{server.url(name)}"\nlanguage = "{lang}"\n'
        for name, (title, lang, _) in FEEDS.items()
    )
    return (
        textwrap.dedent(f"""
        [database]
        url = "sqlite:///{folder / "demo.db"}"

        [polling]
        interval = "15m"
        min_interval = "1s"
        parse_workers = 1

        [alerts.console]
        type = "console"
        """)
        + feeds
        + DEMO_TOPICS
    )


DEMO_TOPICS = """
[[topics]]
name = "nk-russia-alliance"
descriptions = [
  "North Korea supports Russia's war in Ukraine: arms, shells, missiles and troops sent to Russia",
  "Kim Jong Un and Vladimir Putin: summit, military cooperation, Pyongyang-Moscow alliance",
  "Korea Utara mendukung Rusia dalam perang Ukraina; Kim Jong Un bertemu Putin",
]
require = [
  ["north korea", "north korean", "pyongyang", "kim jong un", "dprk", "korea utara", "korut"],
  ["russia", "russian", "moscow", "putin", "kremlin", "rusia"],
]
threshold = 0.97
channels = ["console"]

[[topics]]
name = "nk-russia-sanctions"
descriptions = [
  "Sanctions against North Korea and Russia over arms deals and military cooperation",
  "UN Security Council sanctions, export controls and blacklists targeting Pyongyang and Moscow",
  "Sanksi terhadap Korea Utara dan Rusia",
]
require = [
  ["sanction", "sanctions", "sanctioned", "embargo", "blacklist*", "sanksi"],
  ["north korea", "north korean", "pyongyang", "kim jong un", "dprk", "korea utara"],
  ["russia", "russian", "moscow", "putin", "kremlin", "rusia"],
]
threshold = 0.97
channels = ["console"]
"""


def run_demo(say: Callable[[str], None] = print, *, keep: Path | None = None) -> int:
    """Run the demo; return the number of matches found (the CLI prints them)."""
    from monitor.config import parse_config
    from monitor.pipeline.cycle import run_once
    from monitor.pipeline.runtime import open_runtime
    from monitor.store import db, queries, read_models

    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as tmp, DemoFeedServer() as server:
        folder = keep or Path(tmp)
        path = folder / "config.toml"
        path.write_text(demo_config_text(server, folder), encoding="utf-8")
        config = parse_config(path.read_text(encoding="utf-8"), path)
        say(f"demo: {len(FEEDS)} sample feeds on {server.url('')}, database in {folder}")
        runtime = open_runtime(config)
        try:
            first = run_once(runtime)
            say(
                f"demo: first poll stored {first.poll.articles_stored} articles already in the "
                "feeds (history: they are not alerted)"
            )
            say("demo: the feeds publish new items; polling again, then matching and alerting...")
            server.publish()
            with db.session_scope(runtime.sessions) as session:
                queries.make_all_feeds_due(session)
            second = run_once(runtime)
            say(
                f"demo: stored {second.poll.articles_stored} new articles, "
                f"{second.match.matched} matches, {second.delivery.sent} alerts sent"
            )
            with db.session_scope(runtime.sessions) as session:
                rows, _ = read_models.list_matches(session, read_models.MatchFilter(limit=50))
        finally:
            runtime.close()
    say("demo: matches (what `monitor matches` shows):")
    for row in rows:
        say(f"  {row['score']:.3f}  {row['topic']:<22} {row['title']}  [{row['source']}]")
    if not rows:
        say("  (none)")
    return len(rows)
