"""What the polling stage stores: history on the first poll, dedupe across feeds, parse time
limits, leases, and the same on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from monitor.feeds.parse import ParserPool
from monitor.pipeline.polling import poll_due
from monitor.store import db
from monitor.store import polling as store
from monitor.store.models import Article, Feed
from tests.feeds.conftest import RSS, MakeRuntime, articles, feed_row, fixture, make_due
from tests.support.httpserver import LocalServer, Recorded, Reply


def test_first_poll_is_history_later_entries_are_not(
    server: LocalServer, make_runtime: MakeRuntime
) -> None:
    version = {"n": 1}

    def changing(_request: Recorded) -> Reply:
        return Reply(body=fixture(f"changing_v{version['n']}.xml"), headers=RSS)

    server.route("/changing", changing)
    runtime = make_runtime([server.url("/changing")])
    assert poll_due(runtime).articles_stored == 1
    version["n"] = 2
    make_due(runtime)
    assert poll_due(runtime).articles_stored == 1
    stored = {a.entry_key: a.is_history for a in articles(runtime)}
    assert stored == {"chg-1": True, "chg-2": False}


def test_first_success_after_errors_is_still_history(
    server: LocalServer, make_runtime: MakeRuntime
) -> None:
    state = {"ok": False}
    server.route(
        "/flaky",
        lambda _r: (
            Reply(body=fixture("changing_v1.xml"), headers=RSS)
            if state["ok"]
            else Reply(status=500)
        ),
    )
    runtime = make_runtime([server.url("/flaky")])
    poll_due(runtime)
    assert feed_row(runtime, server.url("/flaky")).first_success_at is None
    state["ok"] = True
    make_due(runtime)
    poll_due(runtime)
    row = feed_row(runtime, server.url("/flaky"))
    assert (row.consecutive_errors, row.last_error, row.failing_since) == (0, "", None)
    assert [a.is_history for a in articles(runtime)] == [True]


def test_same_article_from_two_feeds_is_stored_once(
    db_url: str, server: LocalServer, make_runtime: MakeRuntime
) -> None:
    server.route("/a", Reply(body=fixture("syndicated_a.xml"), headers=RSS))
    server.route("/b", Reply(body=fixture("syndicated_b.xml"), headers=RSS))
    runtime = make_runtime([server.url("/a"), server.url("/b")], url=db_url)
    assert poll_due(runtime).articles_stored == 2
    links = sorted(a.canonical_link for a in articles(runtime))
    assert links == ["https://paperb.example/own", "https://wire.example/story/77"]
    make_due(runtime)
    assert poll_due(runtime).articles_stored == 0
    assert len(articles(runtime)) == 2


def test_store_entries_is_idempotent(db_url: str, make_runtime: MakeRuntime) -> None:
    from monitor.feeds.parse import parse_feed

    runtime = make_runtime(["http://127.0.0.1:9/x"], url=db_url)
    parsed = parse_feed(
        fixture("rss20.xml"), url="http://127.0.0.1:9/x", fetched_at=datetime.now(UTC)
    )
    feed_id = feed_row(runtime, "http://127.0.0.1:9/x").id
    for _ in range(2):
        with db.session_scope(runtime.sessions) as session:
            store.store_entries(
                session, feed_id, parsed.entries, is_history=False, fetched_at=datetime.now(UTC)
            )
    assert [a.entry_key for a in articles(runtime)] == [
        "daily-budget-7",
        "https://daily.example/news/rain",
    ]


def test_parse_that_hangs_is_stopped_and_polling_goes_on(
    server: LocalServer, make_runtime: MakeRuntime
) -> None:
    server.route("/slow-author", Reply(body=fixture("slow_author.xml"), headers=RSS))
    server.route("/healthy", Reply(body=fixture("rss20.xml"), headers=RSS))
    pool = ParserPool(1, timeout_s=1.0)
    try:
        runtime = make_runtime([server.url("/slow-author"), server.url("/healthy")], pool=pool)
        poll_due(runtime)
        row = feed_row(runtime, server.url("/slow-author"))
        assert "longer than 1s" in row.last_error
        assert row.consecutive_errors == 1
        assert articles(runtime, row.id) == []
        assert len(articles(runtime, feed_row(runtime, server.url("/healthy")).id)) == 2
        assert pool.replaced == 1
        # the replacement pool works
        make_due(runtime)
        server.route("/slow-author", Reply(body=fixture("atom10.xml"), headers=RSS))
        poll_due(runtime)
        assert len(articles(runtime, row.id)) == 2
    finally:
        runtime.resources.parser_pool = None
        pool.close()


def test_expired_lease_is_claimable_again(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime(["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"])
    now = datetime.now(UTC)
    with db.session_scope(runtime.sessions) as session:
        assert len(store.claim_due(session, "w1", now=now, lease_s=60)) == 2
    with db.session_scope(runtime.sessions) as session:
        assert store.claim_due(session, "w2", now=now + timedelta(seconds=30), lease_s=60) == []
    with db.session_scope(runtime.sessions) as session:
        again = store.claim_due(session, "w2", now=now + timedelta(seconds=61), lease_s=60)
    assert len(again) == 2


def test_disabled_and_not_due_feeds_are_not_claimed(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime(["http://127.0.0.1:9/a", "http://127.0.0.1:9/b", "http://127.0.0.1:9/c"])
    now = datetime.now(UTC)
    with db.session_scope(runtime.sessions) as session:
        session.execute(update(Feed).where(Feed.url.endswith("/a")).values(enabled=False))
        session.execute(
            update(Feed)
            .where(Feed.url.endswith("/b"))
            .values(next_poll_at=now + timedelta(hours=1))
        )
    with db.session_scope(runtime.sessions) as session:
        claimed = store.claim_due(session, "w1", now=now + timedelta(seconds=1), lease_s=60)
    assert [f.url for f in claimed] == ["http://127.0.0.1:9/c"]


@pytest.mark.postgres
def test_concurrent_claimers_get_disjoint_feeds_on_postgresql(
    pg_url: str, make_runtime: MakeRuntime
) -> None:
    urls = [f"http://127.0.0.1:9/f{i}" for i in range(60)]
    runtime = make_runtime(urls, url=pg_url)
    now = datetime.now(UTC) + timedelta(seconds=1)
    barrier = threading.Barrier(2)
    claimed: dict[str, list[int]] = {}

    def claim(owner: str) -> None:
        with db.session_scope(runtime.sessions) as session:
            session.execute(select(func.now()))  # open the transaction before the race
            barrier.wait()
            feeds = store.claim_due(session, owner, now=now, lease_s=60, limit=40)
            claimed[owner] = [f.id for f in feeds]

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    first, second = set(claimed["w0"]), set(claimed["w1"])
    assert not first & second
    assert len(first | second) == 60
    assert max(len(first), len(second)) == 40
    with db.session_scope(runtime.sessions) as session:
        owners = dict(session.execute(select(Feed.id, Feed.lease_owner)).all())
    assert all(owners[i] == "w0" for i in first)
    assert all(owners[i] == "w1" for i in second)


@pytest.mark.postgres
def test_poll_cycle_on_postgresql(
    pg_url: str, server: LocalServer, make_runtime: MakeRuntime
) -> None:
    server.route("/rss", Reply(body=fixture("rss20.xml"), headers=RSS))
    server.route("/utf8", Reply(body=fixture("invalid_utf8.xml"), headers=RSS))
    server.route("/gone", Reply(status=410))
    runtime = make_runtime(
        [server.url("/rss"), server.url("/utf8"), server.url("/gone")], url=pg_url
    )
    report = poll_due(runtime)
    assert (report.feeds_polled, report.feeds_failed, report.articles_stored) == (3, 1, 3)
    assert feed_row(runtime, server.url("/gone")).enabled is False
    with db.session_scope(runtime.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Article)) == 3
    # second poll: the feed answers 304 (batched UPDATE path), the lease is released
    server.route(
        "/rss",
        lambda r: (
            Reply(status=304)
            if r.header("If-None-Match") == '"pg"'
            else Reply(body=fixture("rss20.xml"), headers={**RSS, "ETag": '"pg"'})
        ),
    )
    make_due(runtime)
    poll_due(runtime)  # 200 with an ETag
    make_due(runtime)
    report = poll_due(runtime)
    assert report.not_modified == 1
    row = feed_row(runtime, server.url("/rss"))
    assert (row.last_status, row.consecutive_errors, row.lease_owner) == (304, 0, None)
    assert row.next_poll_at > datetime.now(UTC)


def test_feed_removed_while_polled_does_not_break_the_batch(
    server: LocalServer, make_runtime: MakeRuntime
) -> None:
    urls = [server.url(f"/ok{i}") for i in range(5)]
    runtime = make_runtime([*urls, server.url("/vanishing")])

    def vanish(_request: Recorded) -> Reply:
        from monitor.store import queries

        with db.session_scope(runtime.sessions) as session:
            queries.remove_feed(session, server.url("/vanishing"), purge=True)
        return Reply(body=fixture("rss10.rdf"), headers=RSS)

    for i in range(5):
        server.route(f"/ok{i}", Reply(body=fixture(f"syndicated_{'ab'[i % 2]}.xml"), headers=RSS))
    server.route("/vanishing", vanish)
    report = poll_due(runtime)
    assert report.feeds_polled == 6
    assert {a.canonical_link for a in articles(runtime)} == {
        "https://wire.example/story/77",
        "https://paperb.example/own",
    }
    assert all(feed_row(runtime, u).last_status == 200 for u in urls)


def test_unreachable_feed_is_logged_with_its_error(
    server: LocalServer, make_runtime: MakeRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: connection refused, as when offline
    dead = f"http://127.0.0.1:{closed_port}/rss"
    server.route("/rss", Reply(body=fixture("rss20.xml"), headers=RSS))
    runtime = make_runtime([dead, server.url("/rss")])
    with caplog.at_level("WARNING", logger="monitor.pipeline.polling"):
        report = poll_due(runtime)
    assert (report.feeds_polled, report.feeds_failed) == (2, 1)
    [record] = [r for r in caplog.records if r.getMessage() == "feed poll failed"]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["url"] == dead
    assert fields["feed_id"] == feed_row(runtime, dead).id
    assert "ConnectError" in fields["error"]
    row = feed_row(runtime, dead)
    assert row.consecutive_errors == 1
    assert "ConnectError" in row.last_error
    assert feed_row(runtime, server.url("/rss")).last_status == 200


def test_stop_request_leaves_queued_feeds_for_later(
    server: LocalServer, make_runtime: MakeRuntime
) -> None:
    urls = [server.url(f"/f{i}") for i in range(6)]
    runtime = make_runtime(urls, concurrency=1)

    def answer_then_stop(_request: Recorded) -> Reply:
        runtime.stop.set()  # as SIGTERM would, while the first fetch is in flight
        return Reply(body=fixture("rss20.xml"), headers=RSS)

    for i in range(6):
        server.route(f"/f{i}", answer_then_stop)
    report = poll_due(runtime)
    assert report.feeds_polled == 1
    assert len(server.requests) == 1
    rows = [feed_row(runtime, u) for u in urls]
    assert sum(r.last_status == 200 for r in rows) == 1
    assert all(r.lease_owner is None and r.lease_until is None for r in rows)
    assert sum(r.last_polled_at is None for r in rows) == 5
