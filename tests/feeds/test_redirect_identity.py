"""A permanent redirect moves where a feed is fetched from, never the feed's identity: the
configured URL stays on the row, so syncing the config again finds it instead of adding a
second feed for the old URL."""

from __future__ import annotations

from sqlalchemy import select

from monitor.pipeline.polling import poll_due
from monitor.store import db, queries
from monitor.store.models import Feed
from tests.feeds.conftest import RSS, MakeRuntime, articles, fixture, make_due
from tests.support.httpserver import LocalServer, Reply


def _feeds(runtime: object) -> list[Feed]:
    with db.session_scope(runtime.sessions) as session:  # type: ignore[attr-defined]
        return list(session.scalars(select(Feed).order_by(Feed.id)))


def test_301_then_config_sync_keeps_one_feed_polled_at_the_new_location(
    server: LocalServer, make_runtime: MakeRuntime
) -> None:
    old, new = server.url("/old.xml"), server.url("/new.xml")
    server.route("/old.xml", Reply(status=301, headers={"Location": "/new.xml"}))
    server.route("/new.xml", Reply(body=fixture("rss20.xml"), headers=RSS))
    runtime = make_runtime([old])

    assert poll_due(runtime).feeds_failed == 0
    assert [(f.url, f.last_status) for f in _feeds(runtime)] == [(old, 200)]

    with db.session_scope(runtime.sessions) as session:  # as every command and SIGHUP do
        queries.sync_config(session, runtime.config)
    make_due(runtime)
    report = poll_due(runtime)

    assert [f.url for f in _feeds(runtime)] == [old]  # one feed, still known by its config URL
    assert report.feeds_polled == 1
    assert len(server.requests_to("/old.xml")) == 1  # only the first poll asked the old URL
    assert len(server.requests_to("/new.xml")) == 2
    assert _feeds(runtime)[0].redirect_url == new
    assert len(articles(runtime)) == 2


def test_redirect_back_to_the_configured_url_clears_the_new_location(
    server: LocalServer, make_runtime: MakeRuntime
) -> None:
    old, new = server.url("/a.xml"), server.url("/b.xml")
    moved = {"yes": True}
    server.route(
        "/a.xml",
        lambda _r: (
            Reply(status=308, headers={"Location": "/b.xml"})
            if moved["yes"]
            else Reply(body=fixture("rss20.xml"), headers=RSS)
        ),
    )
    server.route(
        "/b.xml",
        lambda _r: (
            Reply(body=fixture("rss20.xml"), headers=RSS)
            if moved["yes"]
            else Reply(status=301, headers={"Location": "/a.xml"})
        ),
    )
    runtime = make_runtime([old])
    poll_due(runtime)
    assert _feeds(runtime)[0].redirect_url == new
    moved["yes"] = False
    make_due(runtime)
    poll_due(runtime)
    [feed] = _feeds(runtime)
    assert (feed.url, feed.redirect_url, feed.last_status) == (old, None, 200)
