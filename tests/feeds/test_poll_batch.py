"""The batched write path of the polling stage (issue 14, 10,000 feeds): results of many feeds
written with one executemany UPDATE per kind and one link lookup per batch must record exactly
what the row-by-row path recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from monitor.domain import Entry
from monitor.pipeline.polling import poll_due
from monitor.store import db
from monitor.store import polling as store
from monitor.store.models import Feed
from tests.feeds.conftest import RSS, MakeRuntime, articles, feed_row, make_due
from tests.support.httpserver import LocalServer, Recorded, Reply


def _rss(title: str, language: str, items: list[tuple[str, str]], etag_note: str = "") -> bytes:
    head = f"<title>{title}</title>" if title else ""
    lang = f"<language>{language}</language>" if language else ""
    body = "".join(
        f"<item><title>Story {guid}</title><guid isPermaLink='false'>{guid}</guid>"
        f"<link>{link}</link><description>Text of {guid} {etag_note}</description></item>"
        for guid, link in items
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>{head}'
        f"<link>https://site.example/</link>{lang}{body}</channel></rss>"
    ).encode()


def test_batched_success_keeps_title_and_language_the_feed_stops_sending(
    server: LocalServer, make_runtime: MakeRuntime
) -> None:
    answers = {
        1: Reply(
            body=_rss("First title", "en", [("a-1", "https://a.example/1")]),
            headers={**RSS, "ETag": '"v1"'},
        ),
        2: Reply(
            body=_rss("", "de", [("a-2", "https://a.example/2")]),
            headers={**RSS, "ETag": '"v2"'},
        ),
    }
    version = {"n": 1}
    server.route("/a", lambda _r: answers[version["n"]])
    runtime = make_runtime([server.url("/a")])
    poll_due(runtime)
    first = feed_row(runtime, server.url("/a"))
    assert (first.title, first.language, first.etag) == ("First title", "en", '"v1"')

    # a failed poll in between: the next success must end the error streak
    with db.session_scope(runtime.sessions) as session:
        session.execute(
            update(Feed).values(
                consecutive_errors=3, last_error="HTTP 500", failing_since=first.created_at
            )
        )
    version["n"] = 2
    make_due(runtime)
    report = poll_due(runtime)

    row = feed_row(runtime, server.url("/a"))
    assert report.articles_stored == 1
    assert row.title == "First title"  # the feed sent none: kept
    assert row.language == "en"  # learnt once, not replaced by a later declaration
    assert row.etag == '"v2"'
    assert (row.consecutive_errors, row.last_error, row.failing_since) == (0, "", None)
    assert row.first_success_at == first.first_success_at
    assert row.last_success_at is not None
    assert row.last_success_at > first.last_success_at
    assert (row.lease_owner, row.lease_until) == (None, None)
    assert [a.is_history for a in articles(runtime, row.id)] == [True, False]


def test_batched_success_leaves_another_workers_lease_alone(
    server: LocalServer, make_runtime: MakeRuntime
) -> None:
    """A result written after our lease passed to another worker must not free its lease."""
    runtime = make_runtime([server.url("/a")])
    feed_id = feed_row(runtime, server.url("/a")).id
    until = datetime.now(UTC) + timedelta(minutes=5)
    with db.session_scope(runtime.sessions) as session:
        session.execute(update(Feed).values(lease_owner="other-worker", lease_until=until))
    outcome = store.PollOutcome(
        now=datetime.now(UTC), status=200, next_poll_at=until, title="T", language="en"
    )
    with db.session_scope(runtime.sessions) as session:
        store.record_success_many(session, runtime.worker_id, [(feed_id, outcome)])
    row = feed_row(runtime, server.url("/a"))
    assert (row.lease_owner, row.title, row.language) == ("other-worker", "T", "en")


def _entry(key: str, link: str) -> Entry:
    return Entry(
        entry_key=key,
        link=link,
        canonical_link=link,
        title=f"Title {key}",
        summary="summary",
        published_at=datetime(2026, 11, 1, tzinfo=UTC),
        language="en",
    )


def test_store_entries_many_dedupes_links_across_the_feeds_of_one_batch(
    db_url: str, make_runtime: MakeRuntime
) -> None:
    urls = [f"http://127.0.0.1:9/{name}" for name in ("a", "b", "c")]
    runtime = make_runtime(urls, url=db_url)
    a, b, c = (feed_row(runtime, u).id for u in urls)
    now = datetime.now(UTC)
    # more links than one lookup chunk, so the chunked IN lists are exercised
    many = [_entry(f"c-{i}", f"https://c.example/{i}") for i in range(store.LOOKUP_CHUNK + 20)]
    batch = [
        store.FeedEntries(
            a, [_entry("a-1", "https://wire.example/77"), _entry("a-2", "")], False, now
        ),
        store.FeedEntries(
            b,
            [
                _entry("b-1", "https://wire.example/77"),  # the same story as a-1
                _entry("b-2", "https://b.example/own"),
                _entry("b-2", "https://b.example/own"),  # repeated within the feed
            ],
            True,
            now,
        ),
        store.FeedEntries(c, many, False, now),
    ]
    with db.session_scope(runtime.sessions) as session:
        counts = store.store_entries_many(session, batch)
    assert counts == [2, 1, len(many)]
    stored = {(x.feed_id, x.entry_key): x.is_history for x in articles(runtime)}
    assert stored[(a, "a-1")] is False
    assert stored[(b, "b-2")] is True
    assert (b, "b-1") not in stored
    assert len(stored) == 3 + len(many)

    with db.session_scope(runtime.sessions) as session:  # again: nothing new
        assert store.store_entries_many(session, batch) == [0, 0, 0]
    assert len(articles(runtime)) == 3 + len(many)


def test_a_mixed_batch_records_each_feed_as_the_row_path_did(
    server: LocalServer, make_runtime: MakeRuntime
) -> None:
    """304s, plain successes, errors and a permanent redirect finishing together are one write
    batch; each row must still get its own outcome."""
    seen: dict[str, int] = {}

    def counting(name: str, reply: Reply) -> object:
        def handler(request: Recorded) -> Reply:
            seen[name] = seen.get(name, 0) + 1
            if request.header("If-None-Match") == '"same"':
                return Reply(status=304, headers={"ETag": '"same"'})
            return reply

        return handler

    for i in range(30):
        body = _rss(f"Feed {i}", "en", [(f"f{i}-1", f"https://f{i}.example/1")])
        server.route(
            f"/ok{i}", counting(f"ok{i}", Reply(body=body, headers={**RSS, "ETag": '"same"'}))
        )  # type: ignore[arg-type]
    server.route("/broken", Reply(status=500))
    server.route("/moved", Reply(status=301, headers={"Location": "/ok0"}))
    urls = [server.url(f"/ok{i}") for i in range(30)] + [
        server.url("/broken"),
        server.url("/moved"),
    ]
    runtime = make_runtime(urls)

    first = poll_due(runtime)
    assert (first.feeds_polled, first.feeds_failed, first.not_modified) == (32, 1, 0)
    make_due(runtime)
    second = poll_due(runtime)

    assert (second.feeds_polled, second.feeds_failed, second.not_modified) == (32, 1, 31)
    for i in range(30):
        row = feed_row(runtime, server.url(f"/ok{i}"))
        assert (row.last_status, row.etag, row.title, row.consecutive_errors) == (
            304,
            '"same"',
            f"Feed {i}",
            0,
        )
    broken = feed_row(runtime, server.url("/broken"))
    assert (broken.last_status, broken.consecutive_errors) == (500, 2)
    moved = feed_row(runtime, server.url("/moved"))
    assert (moved.redirect_url, moved.last_status) == (server.url("/ok0"), 304)
    assert all(row.lease_owner is None for row in (feed_row(runtime, u) for u in urls))


def test_known_empty_skips_the_key_lookup_but_never_duplicates_a_key(
    db_url: str, make_runtime: MakeRuntime
) -> None:
    """``known_empty`` is the caller's promise (a feed's first success); broken, the unique
    key still holds: no row is stored twice."""
    runtime = make_runtime(["http://127.0.0.1:9/a"], url=db_url)
    feed_id = feed_row(runtime, "http://127.0.0.1:9/a").id
    now = datetime.now(UTC)
    entries = [_entry("k-1", "https://a.example/1"), _entry("k-2", ""), _entry("k-2", "")]
    first = store.FeedEntries(feed_id, entries, True, now, known_empty=True)
    with db.session_scope(runtime.sessions) as session:
        assert store.store_entries_many(session, [first]) == [2]
    with db.session_scope(runtime.sessions) as session:
        store.store_entries_many(session, [first])  # the promise broken
    assert sorted(a.entry_key for a in articles(runtime)) == ["k-1", "k-2"]
