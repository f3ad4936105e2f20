"""The web page in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright),
served by a real uvicorn server on loopback. Saves a screenshot to test-artifacts/query/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.api import create_app
from monitor.store import db
from monitor.store.models import Feedback
from tests.query.data import HOSTILE_TITLE, store_real_vectors
from tests.support.appserver import serve
from tests.support.browser import BROWSER_MARKS, chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "query"

pytestmark = [*BROWSER_MARKS]


@pytest.fixture
def base_url(env, embedder) -> Iterator[str]:
    store_real_vectors(env.runtime.sessions, embedder)
    env.runtime.resources.embedder = embedder  # the session's model, not a second load
    with serve(create_app(env.runtime, token="")) as url:
        yield url


@pytest.fixture
def page() -> Iterator[object]:
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 1200, "height": 1400})


def test_page_shows_matches_escaped_and_takes_feedback(base_url, page, env) -> None:
    page.goto(base_url + "/")
    hostile = page.locator(f"li#m{env.seeded.hostile_match}")
    assert hostile.locator("a.title").inner_text() == HOSTILE_TITLE  # shown as text
    assert hostile.locator("a.title").get_attribute("href") == "#"  # javascript: link dropped
    hostile.locator("a.title").click()
    assert page.evaluate("window.__pwned") is None  # no payload ran, not even on click
    assert page.locator("#topics script, #topics img").count() == 0
    assert hostile.locator("blockquote.passage").inner_text() == (
        "<b>bold</b> passage & <i>more</i>"
    )
    assert hostile.locator(".score").inner_text() == "0.900"
    assert page.locator(f"h2#topic-{env.seeded.topics['sanctions']}").count() == 1
    assert page.locator("table.feeds td.state-erroring").inner_text().startswith("erroring")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)

    target = env.seeded.matches[1]
    page.locator(f"li#m{target} button.not-relevant").click()
    page.wait_for_url(f"**/#m{target}")
    assert page.locator(f"li#m{target} .judged").inner_text() == "judged not relevant"
    with db.session_scope(env.runtime.sessions) as s:
        rows = s.scalars(select(Feedback)).all()
        assert [(r.match_id, r.relevant) for r in rows] == [(target, False)]


def test_search_box_finds_stored_articles(base_url, page) -> None:
    page.goto(base_url + "/")
    page.fill("input[name=q]", "troops sent to Russia")
    page.locator("form.search button").click()
    page.wait_for_selector("#search-results")
    first = page.locator("#search-results li a.title").first.inner_text()
    assert first.startswith("North Korea sends thousands of soldiers")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "search.png"), full_page=True)


def test_page_and_docs_work_under_the_strict_csp_offline(base_url, page) -> None:
    """The page's style and Swagger UI at /docs come from this server and run under the
    Content-Security-Policy (no inline code): no CSP violation, no request leaves it."""
    violations: list[str] = []
    requested: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("request", lambda r: requested.append(r.url))
    page.goto(base_url + "/")
    assert page.evaluate("getComputedStyle(document.querySelector('header')).display") == "flex"
    page.goto(base_url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/matches" in paths
    topics = page.locator(".opblock", has_text="/api/topics")
    topics.locator(".opblock-summary").click()
    topics.locator("button.try-out__btn").click()
    topics.locator("button.execute").click()
    status = topics.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=30_000)
    assert status.inner_text().strip() == "200"  # "Try it out" reaches the API (connect-src)
    assert violations == []
    assert [u for u in requested if not u.startswith((base_url, "data:"))] == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docs.png"), full_page=False)
