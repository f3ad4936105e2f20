"""The web page in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright),
served by a real uvicorn server on loopback. Saves a screenshot to test-artifacts/query/."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import select

from monitor.api import create_app
from monitor.store import db
from monitor.store.models import Feedback
from tests.query.data import HOSTILE_TITLE, store_real_vectors

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "query"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    # outside CI a missing browser skips; in CI (.ci/run installs it) it must be there
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="Debian chromium not installed (apt-get install chromium)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def base_url(env, embedder) -> Iterator[str]:
    store_real_vectors(env.runtime.sessions, embedder)
    env.runtime.resources.embedder = embedder  # the session's model, not a second load
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(env.runtime, token=""), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1200, "height": 1400})
        finally:
            browser.close()


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
