"""One polling cycle against a loopback server that serves every behaviour at once.

Each case asserts what is stored and what is recorded on the feed row; the healthy feeds served
next to the broken ones must all be polled in the same cycle, and again in the next one.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from monitor.pipeline.polling import poll_due
from monitor.pipeline.runtime import Runtime
from tests.feeds.conftest import RSS, MakeRuntime, articles, feed_by_id, feed_row, fixture, make_due
from tests.support.httpserver import LocalServer, Recorded, Reply

ETAG = '"v1-abc"'
LAST_MODIFIED = "Tue, 24 Nov 2026 06:00:00 GMT"
MAX_BODY = 256 * 1024


def _conditional_etag(request: Recorded) -> Reply:
    if request.header("If-None-Match") == ETAG:
        return Reply(status=304, headers={"ETag": ETAG})
    return Reply(body=fixture("rss20.xml"), headers={**RSS, "ETag": ETAG})


def _conditional_last_modified(request: Recorded) -> Reply:
    if request.header("If-Modified-Since") == LAST_MODIFIED:
        return Reply(status=304)
    return Reply(
        body=fixture("rss091.xml"),
        headers={"Content-Type": "text/xml", "Last-Modified": LAST_MODIFIED},
    )


def _gzip_bomb() -> Iterator[bytes]:
    """About 40 KB on the wire that decompresses to 64 MB of zeros after a feed prefix."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    yield packer.compress(b'<?xml version="1.0"?><rss version="2.0"><channel><title>')
    zeros = b"\0" * (1024 * 1024)
    for _ in range(64):
        yield packer.compress(zeros)
    yield packer.flush()


def _huge() -> Iterator[bytes]:
    yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>huge'
    for _ in range(200):  # 12.8 MB, streamed with no Content-Length
        yield b"x" * 65536


def _serve(server: LocalServer) -> dict[str, str]:
    """Route every behaviour; return name -> URL."""
    xml = {**RSS}
    retry_date = format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)
    routes: dict[str, Reply | object] = {
        "rss091": Reply(body=fixture("rss091.xml"), headers={"Content-Type": "text/xml"}),
        "rss10": Reply(body=fixture("rss10.rdf"), headers={"Content-Type": "application/rdf+xml"}),
        "rss20": Reply(body=fixture("rss20.xml"), headers=xml),
        "atom10": Reply(
            body=fixture("atom10.xml"), headers={"Content-Type": "application/atom+xml"}
        ),
        "etag": _conditional_etag,
        "last-modified": _conditional_last_modified,
        "too-many": Reply(status=429, headers={"Retry-After": "3600"}),
        "unavailable": Reply(status=503, headers={"Retry-After": retry_date}),
        "error500": Reply(status=500, body=b"oops"),
        "slow": Reply(body=fixture("rss20.xml"), headers=xml, delay_s=10.0),
        "chain": Reply(status=302, headers={"Location": "/chain-2"}),
        "chain-2": Reply(status=307, headers={"Location": "/chain-end"}),
        "chain-end": Reply(body=fixture("no_guids.xml"), headers=xml),
        "loop": Reply(status=302, headers={"Location": "/loop-2"}),
        "loop-2": Reply(status=302, headers={"Location": "/loop"}),
        "moved": Reply(status=301, headers={"Location": "/moved-here"}),
        "moved-here": Reply(body=fixture("duplicate_guids.xml"), headers=xml),
        "gone": Reply(status=410, body=b"gone"),
        "gzip": Reply(
            body=gzip.compress(fixture("html_heavy.xml")),
            headers={**xml, "Content-Encoding": "gzip"},
        ),
        "huge": Reply(body=_huge()),
        "gzip-bomb": Reply(body=_gzip_bomb(), headers={**xml, "Content-Encoding": "gzip"}),
        "billion-laughs": Reply(body=fixture("billion_laughs.xml"), headers=xml),
        "external-entity": Reply(body=fixture("external_entity.xml"), headers=xml),
        "invalid-utf8": Reply(body=fixture("invalid_utf8.xml"), headers=xml),
        "future": Reply(body=fixture("future_dates.xml"), headers=xml),
        "not-a-feed": Reply(body=fixture("not_a_feed.html"), headers={"Content-Type": "text/html"}),
    }
    for name, reply in routes.items():
        server.route(f"/{name}", reply)  # type: ignore[arg-type]
    return {
        name: server.url(f"/{name}")
        for name in routes
        if name not in ("chain-2", "chain-end", "loop-2", "moved-here")
    }


def _titles(runtime: Runtime, url: str) -> list[str]:
    return [a.title for a in articles(runtime, feed_row(runtime, url).id)]


def test_every_behaviour_in_one_cycle(server: LocalServer, make_runtime: MakeRuntime) -> None:
    # The read timeout has room for a healthy local reply on a loaded 2-core machine; only the
    # "slow" route (10 s) runs past it.
    urls = _serve(server)
    runtime = make_runtime(list(urls.values()), read_timeout=5.0, max_body_bytes=MAX_BODY)
    moved_id = feed_row(runtime, urls["moved"]).id
    started = datetime.now(UTC)

    report = poll_due(runtime)

    assert report.feeds_polled == len(urls)
    # healthy feeds of every format: stored, recorded as ok
    assert _titles(runtime, urls["rss091"]) == [
        "Café opens on the square",
        "Harbour dredging starts",
    ]
    assert _titles(runtime, urls["rss10"]) == [
        "Stadtrat beschließt Haushalt",
        "Neue Brücke eröffnet",
    ]
    assert _titles(runtime, urls["rss20"]) == ["Council approves budget", "Rain expected"]
    assert _titles(runtime, urls["atom10"]) == ["Le port rouvre", "Port reopens (English)"]
    for name in ("rss091", "rss10", "rss20", "atom10", "etag", "last-modified"):
        row = feed_row(runtime, urls[name])
        assert (row.last_status, row.consecutive_errors, row.last_error) == (200, 0, ""), name
        assert row.last_success_at is not None
        assert row.first_success_at is not None
        assert row.next_poll_at > started
    rss20 = feed_row(runtime, urls["rss20"])
    assert rss20.ttl_s == 7200  # <ttl>120</ttl> minutes
    # first success: anywhere in [min_interval, ttl] so feeds added together spread out
    assert rss20.next_poll_at <= datetime.now(UTC) + timedelta(seconds=7200)
    assert rss20.title == "Daily Example"
    stored = articles(runtime, rss20.id)[0]
    assert stored.canonical_link == "https://daily.example/news/budget?id=7"
    assert stored.published_at == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert stored.tags == ["politics", "city"]
    assert stored.language == "en"
    assert all(a.is_history for a in articles(runtime))  # first poll of every feed: history

    # validators stored for conditional GET
    assert feed_row(runtime, urls["etag"]).etag == ETAG
    row = feed_row(runtime, urls["last-modified"])
    assert (row.etag, row.last_modified) == (None, LAST_MODIFIED)

    # 429 / 503: error recorded, Retry-After honoured (seconds and HTTP date)
    row = feed_row(runtime, urls["too-many"])
    assert (row.last_status, row.consecutive_errors) == (429, 1)
    assert "429" in row.last_error
    assert row.failing_since is not None
    assert row.next_poll_at >= started + timedelta(seconds=3590)
    row = feed_row(runtime, urls["unavailable"])
    assert row.last_status == 503
    assert row.next_poll_at >= started + timedelta(seconds=7100)

    row = feed_row(runtime, urls["error500"])
    assert (row.last_status, row.consecutive_errors, row.enabled) == (500, 1, True)
    assert "HTTP 500" in row.last_error

    row = feed_row(runtime, urls["slow"])
    assert row.consecutive_errors == 1
    assert "timeout" in row.last_error.lower()
    assert articles(runtime, row.id) == []

    # redirect chain (temporary): stored, URL kept; loop: error; 301: fetched from the new
    # location, the configured URL stays the feed's identity
    assert _titles(runtime, urls["chain"]) == ["Has a link only", "Text only, no link"]
    row = feed_row(runtime, urls["loop"])
    assert "loop" in row.last_error
    assert row.consecutive_errors == 1
    moved = feed_by_id(runtime, moved_id)
    assert (moved.url, moved.redirect_url) == (urls["moved"], server.url("/moved-here"))
    assert moved.last_status == 200
    # duplicate guids: the first entry with a guid wins
    assert [a.title for a in articles(runtime, moved_id)] == ["First version", "Different"]

    # 410: disabled with the reason, visible in `feeds list`
    row = feed_row(runtime, urls["gone"])
    assert row.enabled is False
    assert "410" in row.disabled_reason
    assert row.last_status == 410

    # gzip decoded; HTML-heavy summaries reduced to text
    [html_article] = articles(runtime, feed_row(runtime, urls["gzip"]).id)
    assert html_article.title == "Bold & brave"
    assert html_article.summary == "First para & more one two café — end"

    # size limit while streaming, also on the decompressed size of a gzip bomb
    for name in ("huge", "gzip-bomb"):
        row = feed_row(runtime, urls[name])
        assert "limit" in row.last_error, name
        assert row.consecutive_errors == 1, name
        assert articles(runtime, row.id) == []

    # hostile XML: entities are not expanded, nothing is read from disk
    [laugh] = articles(runtime, feed_row(runtime, urls["billion-laughs"]).id)
    assert len(laugh.title) < 100
    assert "lollol" not in laugh.summary
    [xxe] = articles(runtime, feed_row(runtime, urls["external-entity"]).id)
    assert xxe.title == "before &xxe; after"

    # invalid UTF-8: still stored (bozo with entries), nothing lost
    [broken] = articles(runtime, feed_row(runtime, urls["invalid-utf8"]).id)
    assert broken.title.startswith("Caf")
    assert broken.entry_key == "bad-utf8-1"
    assert feed_row(runtime, urls["invalid-utf8"]).consecutive_errors == 0

    # far-future date clamped to the fetch time; missing date -> fetch time
    future = {a.title: a for a in articles(runtime, feed_row(runtime, urls["future"]).id)}
    assert started - timedelta(seconds=1) <= future["From the future"].published_at
    assert future["From the future"].published_at <= datetime.now(UTC)
    assert future["Undated"].published_at >= started - timedelta(seconds=1)
    assert future["Past"].published_at == datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    row = feed_row(runtime, urls["not-a-feed"])
    assert "not a usable feed" in row.last_error
    assert row.last_status == 200

    # ---- second cycle: conditional GETs, backoff, the healthy keep being polled ----------
    make_due(runtime)
    before = len(server.requests_to("/gone"))
    second_started = datetime.now(UTC)
    report = poll_due(runtime)

    assert report.feeds_polled == len(urls) - 1  # the gone feed is disabled
    assert len(server.requests_to("/gone")) == before
    assert server.requests_to("/etag")[-1].header("If-None-Match") == ETAG
    assert server.requests_to("/last-modified")[-1].header("If-Modified-Since") == LAST_MODIFIED
    assert server.requests_to("/moved-here")[-1].header("User-Agent").startswith("monitor/")
    assert server.requests_to("/moved")[-1:]
    assert len(server.requests_to("/moved")) == 1
    for name in ("etag", "last-modified"):
        row = feed_row(runtime, urls[name])
        assert (row.last_status, row.consecutive_errors) == (304, 0), name
    assert report.not_modified == 2
    for name in ("error500", "loop", "slow"):
        assert feed_row(runtime, urls[name]).consecutive_errors == 2, name
    for name in ("rss091", "rss10", "rss20", "atom10", "chain", "gzip"):
        assert feed_row(runtime, urls[name]).last_status == 200, name
    # later successes: the <ttl> of 120 minutes lengthens the 15-minute interval (+-10%)
    rss20_next = feed_row(runtime, urls["rss20"]).next_poll_at
    assert rss20_next >= second_started + timedelta(seconds=7200 * 0.89)
    assert feed_row(runtime, urls["rss091"]).next_poll_at <= datetime.now(UTC) + timedelta(
        seconds=900 * 1.11
    )
    assert report.articles_stored == 0  # nothing new: nothing stored twice
