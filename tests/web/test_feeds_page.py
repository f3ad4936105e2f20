"""The feeds page: add by URL or by a page that links to its feed (discovery against a
loopback server), refuse what is already there, disable, OPML import (upload) and export."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from monitor.config import load_config
from monitor.feeds.opml import read_opml
from monitor.store import db, queries
from monitor.store.models import Feed
from tests.conftest import FIXTURES
from tests.support.httpserver import LocalServer, Reply

RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}
PAGE = b"""<!doctype html><html><head><title>News</title>
<link rel="alternate" type="application/rss+xml" href="/news.xml"></head><body>hi</body></html>"""


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        srv.route(
            "/news.xml", Reply(body=(FIXTURES / "feeds" / "rss20.xml").read_bytes(), headers=RSS)
        )
        srv.route("/", Reply(body=PAGE, headers={"Content-Type": "text/html"}))
        srv.route(
            "/plain",
            Reply(body=b"<html><body>no feed</body></html>", headers={"Content-Type": "text/html"}),
        )
        yield srv


def urls(env) -> set[str]:
    with db.session_scope(env.runtime.sessions) as s:
        return set(s.scalars(select(Feed.url)))


def test_a_page_url_adds_the_feed_it_advertises(open_client, env, server) -> None:
    answer = open_client.post("/feeds", data={"url": server.url("/"), "name": "Local news"})
    assert answer.status_code == 200
    assert f"added: {server.url('/news.xml')} (found on {server.url('/')})" in answer.text
    assert server.url("/news.xml") in urls(env)
    assert "Local news" in answer.text  # the list shows the new feed
    again = open_client.post("/feeds", data={"url": server.url("/news.xml")})
    assert again.status_code == 400
    assert "already exists" in again.text


def test_a_page_without_a_feed_or_a_bad_url_stores_nothing(open_client, env, server) -> None:
    before = urls(env)
    answer = open_client.post("/feeds", data={"url": server.url("/plain")})
    assert answer.status_code == 400
    assert "neither a feed nor a page that links to one" in answer.text
    assert open_client.post("/feeds", data={"url": "ftp://x.test/"}).status_code == 400
    assert urls(env) == before


def test_disable_keeps_history_and_config_feeds_are_refused(open_client, env) -> None:
    feed_id = env.seeded.feeds["Broken Feed"]
    answer = open_client.post(f"/feeds/{feed_id}/disable")
    assert answer.status_code == 200
    assert f"Feed {feed_id} disabled" in answer.text
    with db.session_scope(env.runtime.sessions) as s:
        assert s.get(Feed, feed_id).enabled is False
    assert open_client.post("/feeds/999999/disable").status_code == 400
    for page in ("/feeds", "/"):  # a feed without an error shows an empty cell, not "None"
        assert ">None<" not in open_client.get(page).text


def test_opml_upload_imports_and_counts_what_it_skips(open_client, env) -> None:
    data = (FIXTURES / "opml" / "reader-export.opml").read_bytes()
    answer = open_client.post("/feeds/import", files={"opml": ("mine.opml", data, "text/x-opml")})
    assert answer.status_code == 200, answer.text
    assert "imported 4 feeds; skipped 1 listed twice, 1 not http(s)" in answer.text
    assert "https://baltic.example/atom.xml" in urls(env)
    assert "Seoul &amp; Beyond &lt;b&gt;" in answer.text  # escaped in the list
    again = open_client.post("/feeds/import", files={"opml": ("mine.opml", data, "text/x-opml")})
    assert "imported 0 feeds" in again.text
    assert "4 already stored" in again.text


def test_a_malformed_opml_upload_imports_nothing(open_client, env) -> None:
    before = urls(env)
    data = (FIXTURES / "opml" / "truncated.opml").read_bytes()
    answer = open_client.post("/feeds/import", files={"opml": ("bad.opml", data, "text/xml")})
    assert answer.status_code == 400
    assert "bad.opml:" in answer.text
    assert "nothing imported" in answer.text
    assert urls(env) == before
    assert open_client.post("/feeds/import", files={"other": ("x", b"y")}).status_code == 400


def test_export_is_opml_with_every_feed_and_tag(open_client, env) -> None:
    data = (FIXTURES / "opml" / "reader-export.opml").read_bytes()
    open_client.post("/feeds/import", files={"opml": ("mine.opml", data, "text/x-opml")})
    answer = open_client.get("/feeds/export.opml")
    assert answer.headers["content-disposition"].startswith("attachment")
    listing = read_opml(answer.content, "export")
    assert {s.url for s in listing.subscriptions} == urls(env)
    tags = {s.url: s.tags for s in listing.subscriptions}
    assert set(tags["https://seoul.example/feed?x=1&y=2"]) == {"Korea", "Asia/East", "sanctions"}


def test_a_config_feed_offers_no_disable_button(open_client, env) -> None:
    path = env.config_path
    path.write_text(
        path.read_text(encoding="utf-8")
        + '\n[[feeds]]\nurl = "https://user:secret@configured.example/rss"\n',
        encoding="utf-8",
    )
    env.runtime.config = load_config(path, environ={})
    with db.session_scope(env.runtime.sessions) as s:
        queries.sync_config(s, env.runtime.config)
        feed_id = s.scalar(select(Feed.id).where(Feed.url.contains("configured.example")))
    html = open_client.get("/feeds").text
    row = html.split(f'id="feed-{feed_id}"')[1].split("</tr>")[0]
    assert "Disable" not in row
    assert "secret" not in html  # the credentials are masked
    refused = open_client.post(f"/feeds/{feed_id}/disable")
    assert refused.status_code == 400
    assert "delete that [[feeds]] entry" in refused.text
