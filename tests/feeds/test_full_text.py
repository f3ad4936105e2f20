"""Optional full text (``full_text = true``): article pages fetched politely from the real
loopback server, bodies extracted by trafilatura in the real parser processes, stored, and
embedded in place of one-line summaries by the real packaged model."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from monitor.config import Config, DatabaseConfig, FeedConfig, PollingConfig
from monitor.embed import article_text, from_bytes
from monitor.feeds.extract import body_lead, extract_body, is_thin
from monitor.feeds.parse import ParserPool
from monitor.pipeline.fulltext import fetch_full_texts
from monitor.pipeline.matching import get_embedder, match_new
from monitor.pipeline.polling import poll_due
from monitor.pipeline.runtime import Runtime, open_runtime
from monitor.store import db
from monitor.store.models import Article, ArticleBody, Embedding, Feed
from tests.feeds.conftest import RSS
from tests.support.httpserver import LocalServer, Recorded, Reply

PAGES = Path(__file__).resolve().parent.parent / "fixtures" / "pages"
HTML = {"Content-Type": "text/html; charset=utf-8"}
ETAG = '"page-v1"'
FIRST_PARAGRAPH = "The new ferry terminal on the north quay opened to passengers on Monday morning"


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


def feed_xml(server: LocalServer, paths: list[str]) -> bytes:
    """A feed whose summaries are one line each, linking to pages on ``server``."""
    items = "".join(
        f"<item><title>Ferry terminal opens after two years of works</title>"
        f"<link>{server.url(path)}</link><guid>item{n}</guid>"
        f"<description>The terminal is open.</description>"
        f"<pubDate>Tue, 24 Nov 2026 0{n}:00:00 GMT</pubDate></item>"
        for n, path in enumerate(paths)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        "<title>Harbour Herald</title><link>http://herald.test/</link>"
        f"<description>News</description><language>en</language>{items}</channel></rss>"
    ).encode()


MakeFullText = Callable[..., Runtime]


@pytest.fixture
def full_text_runtime(
    db_url: str, shared_pool: ParserPool, server: LocalServer
) -> Iterator[MakeFullText]:
    """Runtimes on SQLite and on PostgreSQL (where pages are claimed FOR UPDATE SKIP LOCKED)."""
    made: list[Runtime] = []

    def make(paths: list[str], **polling: object) -> Runtime:
        server.route("/feed.xml", Reply(body=feed_xml(server, paths), headers=RSS))
        settings: dict[str, object] = {
            "connect_timeout": 2.0,
            "read_timeout": 2.0,
            "total_timeout": 5.0,
            **polling,
        }
        config = Config(
            database=DatabaseConfig(url=db_url),
            polling=PollingConfig(**settings),  # type: ignore[arg-type]
            feeds=[FeedConfig(url=server.url("/feed.xml"), full_text=True)],
        )
        runtime = open_runtime(config)
        runtime.resources.parser_pool = shared_pool
        made.append(runtime)
        with db.session_scope(runtime.sessions) as session:  # not a first poll: no history
            session.execute(update(Feed).values(first_success_at=datetime.now(UTC)))
        return runtime

    yield make
    for runtime in made:
        runtime.resources.parser_pool = None  # shared: closed by its own fixture
        runtime.close()


def bodies(runtime: Runtime) -> list[ArticleBody]:
    with db.session_scope(runtime.sessions) as session:
        rows = list(session.scalars(select(ArticleBody).order_by(ArticleBody.article_id)))
        session.expunge_all()
        return rows


def make_due(runtime: Runtime) -> None:
    with db.session_scope(runtime.sessions) as session:
        session.execute(update(ArticleBody).values(next_attempt_at=datetime.now(UTC)))


def test_the_body_lead_is_stored_and_embedded_in_place_of_a_one_line_summary(
    server: LocalServer, full_text_runtime: MakeFullText
) -> None:
    server.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /private/\n"))
    server.route("/news/ferry", Reply(body=page("article_with_chrome.html"), headers=HTML))
    runtime = full_text_runtime(["/news/ferry"])

    assert poll_due(runtime).articles_stored == 1
    assert [b.status for b in bodies(runtime)] == ["pending"]
    # matching waits for the page (polling.full_text_wait, 2 minutes by default)
    assert match_new(runtime).scored == 0

    report = fetch_full_texts(runtime)

    assert report.fetched == 1
    (row,) = bodies(runtime)
    assert row.status == "done"
    assert FIRST_PARAGRAPH in row.body
    assert "Comments" not in row.body
    assert "grandmother" not in row.body
    assert "cookie" not in row.body.lower()
    assert "Subscribe" not in row.body
    assert row.lead.startswith(FIRST_PARAGRAPH)  # the repeated headline is dropped
    assert row.etag is None  # the page sent no validators

    report = match_new(runtime)
    # embedded now when a topic's aliases allow it, else deferred and made in the same call
    assert report.embedded + report.backfilled == 1
    with db.session_scope(runtime.sessions) as session:
        article = session.scalars(select(Article)).one()
        stored = session.scalars(select(Embedding)).one()
        title, summary = article.title, article.summary
    embedder = get_embedder(runtime)
    vector = from_bytes(stored.vector, embedder.dim)
    with_lead, with_summary = embedder.encode(
        [article_text(title, row.lead, 128), article_text(title, summary, 128)], kind="passage"
    )
    assert float(np.dot(vector, with_lead)) > 0.999
    assert float(np.dot(vector, with_summary)) < 0.99

    # a restart (a new process: new runtime, empty robots cache) fetches nothing again
    restarted = full_text_runtime(["/news/ferry"])
    assert fetch_full_texts(restarted).fetched == 0
    assert len(server.requests_to("/news/ferry")) == 1
    assert len(server.requests_to("/robots.txt")) == 1


def test_a_page_robots_txt_disallows_is_never_fetched(
    server: LocalServer, full_text_runtime: MakeFullText
) -> None:
    server.route("/robots.txt", Reply(body=b"User-agent: monitor\nDisallow: /members/\n"))
    server.route("/members/ferry", Reply(body=page("article_with_chrome.html"), headers=HTML))
    server.route("/news/ferry", Reply(body=page("article_with_chrome.html"), headers=HTML))
    runtime = full_text_runtime(["/members/ferry", "/news/ferry"])
    poll_due(runtime)

    report = fetch_full_texts(runtime)

    assert server.requests_to("/members/ferry") == []
    assert len(server.requests_to("/news/ferry")) == 1
    assert report.skipped["robots"] == 1
    assert report.fetched == 1
    assert len(server.requests_to("/robots.txt")) == 1  # asked once for the host
    statuses = {b.url.rsplit("/", 2)[-2]: (b.status, b.reason) for b in bodies(runtime)}
    assert statuses["members"] == ("skipped", "robots.txt disallows this page")
    assert statuses["news"][0] == "done"


def test_a_refetch_is_conditional_and_a_304_costs_no_body(
    server: LocalServer, full_text_runtime: MakeFullText
) -> None:
    def live_page(request: Recorded) -> Reply:
        if request.header("If-None-Match") == ETAG:
            return Reply(status=304, headers={"ETag": ETAG})
        return Reply(body=page("no_article_text.html"), headers={**HTML, "ETag": ETAG})

    server.route("/robots.txt", Reply(status=404))
    server.route("/live/storm", live_page)
    runtime = full_text_runtime(["/live/storm"])
    poll_due(runtime)

    first = fetch_full_texts(runtime)  # a page with no article text yet: tried again later
    assert first.retried == 1
    (row,) = bodies(runtime)
    assert (row.status, row.etag, row.attempts) == ("pending", ETAG, 1)

    make_due(runtime)
    second = fetch_full_texts(runtime)

    requests = server.requests_to("/live/storm")
    assert [r.header("If-None-Match") for r in requests] == [None, ETAG]
    assert second.not_modified == 1
    (row,) = bodies(runtime)
    assert row.status == "skipped"
    assert "304" in row.reason


def test_a_huge_page_is_cut_off_and_skipped_with_a_logged_counted_reason(
    server: LocalServer, full_text_runtime: MakeFullText, caplog: pytest.LogCaptureFixture
) -> None:
    def huge() -> Iterator[bytes]:
        yield b"<html><body><article><p>"
        for _ in range(64):  # 4 MB, streamed without a Content-Length
            yield b"word " * 13_000
        yield b"</p></article></body></html>"

    server.route("/robots.txt", Reply(status=404))
    server.route("/news/huge", lambda _request: Reply(body=huge(), headers=HTML))
    runtime = full_text_runtime(["/news/huge"], full_text_max_bytes=256 * 1024)
    poll_due(runtime)

    with caplog.at_level(logging.INFO, logger="monitor.pipeline.fulltext"):
        report = fetch_full_texts(runtime)

    assert report.skipped["too_large"] == 1
    (row,) = bodies(runtime)
    assert row.status == "skipped"
    assert row.body == ""
    assert "limit of 262144 bytes" in row.reason
    (logged,) = [r for r in caplog.records if r.getMessage() == "article page skipped"]
    fields = logged.fields  # type: ignore[attr-defined]
    assert fields["url"].endswith("/news/huge")
    assert "262144" in fields["reason"]


def test_matching_does_not_wait_for_a_page_past_full_text_wait(
    server: LocalServer, full_text_runtime: MakeFullText
) -> None:
    server.route("/robots.txt", Reply(status=404))
    runtime = full_text_runtime(["/news/slow"], full_text_wait=0.0)
    poll_due(runtime)

    report = match_new(runtime)  # the page was never fetched: the summary is used

    assert report.scored == 1
    assert report.embedded + report.backfilled == 1
    assert [b.status for b in bodies(runtime)] == ["pending"]


def test_history_and_feeds_without_full_text_queue_no_pages(
    server: LocalServer, sqlite_url: str, shared_pool: ParserPool
) -> None:
    server.route("/feed.xml", Reply(body=feed_xml(server, ["/news/a"]), headers=RSS))
    server.route("/plain.xml", Reply(body=feed_xml(server, ["/news/b"]), headers=RSS))
    config = Config(
        database=DatabaseConfig(url=sqlite_url),
        polling=PollingConfig(connect_timeout=2.0, read_timeout=2.0, total_timeout=5.0),
        feeds=[
            FeedConfig(url=server.url("/feed.xml"), full_text=True),  # first poll: history
            FeedConfig(url=server.url("/plain.xml")),
        ],
    )
    runtime = open_runtime(config)
    runtime.resources.parser_pool = shared_pool
    try:
        with db.session_scope(runtime.sessions) as session:
            session.execute(
                update(Feed)
                .where(Feed.url == server.url("/plain.xml"))
                .values(first_success_at=datetime.now(UTC))
            )
        assert poll_due(runtime).articles_stored == 2
        assert bodies(runtime) == []
    finally:
        runtime.resources.parser_pool = None
        runtime.close()


def test_the_lead_rule() -> None:
    assert is_thin("The terminal is open.")
    assert is_thin("One long sentence without an end " * 10)
    two = "The terminal opened on Monday after two years of works on the north quay. " * 2
    assert not is_thin(two + "Six crossings a day will run to the islands this winter.")
    body = "Headline\nFirst paragraph says a lot. It goes on.\nSecond paragraph."
    assert body_lead("Headline", "Short.", body) == (
        "First paragraph says a lot. It goes on. Second paragraph."
    )
    assert body_lead("Headline", two + two, body) == ""  # the summary is enough
    assert extract_body("<html><body><nav>Home</nav></body></html>", "http://x.test/") is None


def test_a_link_that_is_no_http_url_is_skipped_not_fetched(
    server: LocalServer, full_text_runtime: MakeFullText
) -> None:
    runtime = full_text_runtime(["/news/a"])
    poll_due(runtime)
    with db.session_scope(runtime.sessions) as session:  # what a hostile <link> could hold
        session.execute(update(ArticleBody).values(url="http://[broken/page"))

    report = fetch_full_texts(runtime)

    assert report.skipped["link"] == 1
    assert [(b.status, b.reason) for b in bodies(runtime)] == [
        ("skipped", "the article link is not an http(s) URL")
    ]
    assert server.requests_to("/robots.txt") == []
