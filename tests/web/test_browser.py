"""Every page and action of the web app in real headless Chromium (Debian's /usr/bin/chromium
driven by Playwright) against a real uvicorn server on loopback, at 1280x800 and at a phone
width. Screenshots go to test-artifacts/web/ (ignored by git).

Each page is also checked to fit its width (no sideways scrolling), to raise no
Content-Security-Policy violation, and to be usable from the keyboard where it acts."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.api import create_app
from monitor.config import load_config
from monitor.store import db
from monitor.store.models import Feed, Feedback
from tests.conftest import FIXTURES
from tests.support.appserver import serve
from tests.support.browser import BROWSER_MARKS, chromium
from tests.support.httpserver import LocalServer, Reply
from tests.web.conftest import ADMIN, READER

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}

pytestmark = [*BROWSER_MARKS]


@pytest.fixture
def base_url(env) -> Iterator[str]:
    """No token: loopback trust, the admin's view."""
    with serve(create_app(env.runtime, token="")) as url:
        yield url


@pytest.fixture
def guarded_url(env) -> Iterator[str]:
    with serve(create_app(env.runtime, token=ADMIN, read_token=READER)) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def open_page(browser) -> Callable[..., object]:
    """A new page at a viewport, recording CSP violations in ``page.violations``."""
    pages = []

    def make(viewport: dict[str, int] = DESKTOP) -> object:
        context = browser.new_context(viewport=viewport, accept_downloads=True)
        page = context.new_page()
        page.violations = []
        page.on(
            "console",
            lambda m: page.violations.append(m.text) if "Content Security" in m.text else None,
        )
        pages.append(page)
        return page

    yield make
    for page in pages:
        assert page.violations == [], page.violations


def shoot(page, name: str) -> None:
    """Screenshot of what the viewport shows and of the whole page; the page must fit."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    tag = "desktop" if width >= 1000 else "phone"
    page.screenshot(path=str(ARTIFACTS / f"{name}-{tag}.png"))
    page.screenshot(path=str(ARTIFACTS / f"{name}-{tag}-full.png"), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} is {overflow}px wider than a {width}px screen"


PAGES = [
    "/matches",
    "/matches/{first}",
    "/topics",
    "/topics/alliance",
    "/topics/alliance/rename",
    "/topics/alliance/delete",
    "/feeds",
    "/channels",
    "/",
]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_fits_the_screen_and_escapes_feed_text(
    base_url, open_page, env, viewport
) -> None:
    page = open_page(viewport)
    for path in PAGES:
        page.goto(base_url + path.format(first=env.seeded.hostile_match))
        assert page.evaluate("window.__pwned") is None
        name = path.strip("/").replace("/", "-").replace("{first}", "match") or "home"
        if "{first}" in path:
            name = "match"
        shoot(page, name)
    page.goto(f"{base_url}/matches/{env.seeded.hostile_match}")
    assert page.locator("h1").inner_text().startswith("<script>")  # shown as text


def test_filters_from_the_form_land_in_a_shareable_url(base_url, open_page) -> None:
    page = open_page()
    page.goto(base_url + "/matches")
    page.select_option("select[name=topic]", "alliance")
    page.fill("input[name=lang]", "id")
    page.select_option("select[name=sort]", "score")
    page.locator("form.filters button[type=submit]").click()
    page.wait_for_url(re.compile(r".*topic=alliance.*"))
    assert "lang=id" in page.url
    assert "sort=score" in page.url
    titles = page.locator("ol.matches li.match").count()
    assert titles == 6  # alliance matches of the Indonesian feed
    scores = [float(s) for s in page.locator("ol.matches .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    shoot(page, "matches-filtered")
    shared = open_page()
    shared.goto(page.url)  # the same URL gives the same list to someone else
    assert shared.locator("ol.matches li.match").count() == 6
    assert shared.locator("select[name=topic]").input_value() == "alliance"


def test_keyboard_only_filter_and_judgement(base_url, open_page, env) -> None:
    page = open_page()
    page.goto(base_url + "/matches")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.className") == "skip"
    page.focus("select[name=judged]")
    page.keyboard.press("ArrowDown")  # "judged"
    page.keyboard.press("ArrowDown")  # "not judged"
    assert page.locator("select[name=judged]").input_value() == "unjudged"
    for _ in range(3):  # sort, per page, then the Apply button
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Apply"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*judged=unjudged.*"))
    first = page.locator("ol.matches li.match").first
    match_id = int(first.get_attribute("id")[1:])
    first.locator("button.not-relevant").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf".*#m{match_id}$"))
    assert page.locator(f"li#m{match_id}").count() == 0  # judged: it left the unjudged list
    with db.session_scope(env.runtime.sessions) as s:
        assert s.scalar(select(Feedback.relevant).where(Feedback.match_id == match_id)) is False


def test_next_page_follows_the_cursor(base_url, open_page) -> None:
    page = open_page()
    page.goto(base_url + "/matches?limit=25&sort=score")
    assert page.locator("a[rel=next]").count() == 0  # fifteen matches: one page
    page.goto(base_url + "/matches?limit=25&min_score=0.95")
    assert page.locator("p.empty").inner_text() == "No match fits these filters."


def test_match_page_judges_in_one_click(base_url, open_page, env) -> None:
    page = open_page(PHONE)
    first = env.seeded.matches[0]
    page.goto(f"{base_url}/matches/{first}")
    assert page.locator("dl.why").inner_text().count("Seed passage 0 about troops") == 1
    page.locator(".judge-box button.relevant").click()
    page.wait_for_url(f"**/matches/{first}")
    assert page.locator(".judge-box .judged").inner_text() == "judged relevant"
    assert page.locator(".judge-box button.relevant").get_attribute("aria-pressed") == "true"
    assert "alliance: relevant" in page.locator("ul.judgements").inner_text()
    shoot(page, "match-judged")


def test_topic_page_draws_the_chart(base_url, open_page) -> None:
    page = open_page()
    page.goto(base_url + "/topics/alliance")
    assert page.locator("svg.chart").first.locator("rect").count() == 30
    assert page.locator("svg.chart line.marker").count() == 1
    box = page.locator("svg.chart").first.bounding_box()
    assert box["width"] > 600
    assert box["height"] > 100
    page.locator("nav.pager a", has_text="90 days").click()
    page.wait_for_url("**?days=90")
    assert page.locator("svg.chart").first.locator("rect").count() == 90
    shoot(page, "topic-90d")


def test_feeds_page_add_disable_import_export(base_url, open_page, env, tmp_path) -> None:
    with LocalServer() as srv:
        srv.route(
            "/news.xml", Reply(body=(FIXTURES / "feeds" / "rss20.xml").read_bytes(), headers=RSS)
        )
        srv.route(
            "/",
            Reply(
                body=b'<html><head><link rel="alternate" type="application/rss+xml" '
                b'href="/news.xml"></head></html>',
                headers={"Content-Type": "text/html"},
            ),
        )
        page = open_page()
        page.goto(base_url + "/feeds")
        page.fill("input[name=url]", srv.url("/"))
        page.fill("input[name=name]", "Harbour news")
        page.locator("form[action='/feeds'] button").click()
        page.wait_for_selector("p.notice")
        assert f"found on {srv.url('/')}" in page.locator("p.notice").inner_text()
    shoot(page, "feeds-added")
    broken = env.seeded.feeds["Broken Feed"]
    page.locator(f"tr#feed-{broken} button.disable").click()
    page.wait_for_selector("p.notice")
    assert page.locator(f"tr#feed-{broken} td.state-disabled").count() == 1
    page.set_input_files("input[name=opml]", str(FIXTURES / "opml" / "reader-export.opml"))
    page.locator("form[action='/feeds/import'] button").click()
    page.wait_for_selector("p.notice")
    assert "imported 4 feeds" in page.locator("p.notice").inner_text()
    shoot(page, "feeds-imported")
    with page.expect_download() as download:
        page.locator("a[href='/feeds/export.opml']").click()
    saved = tmp_path / "export.opml"
    download.value.save_as(saved)
    with db.session_scope(env.runtime.sessions) as s:
        stored = set(s.scalars(select(Feed.url)))
    text = saved.read_text(encoding="utf-8")
    assert all(url.replace("&", "&amp;") in text for url in stored)
    phone = open_page(PHONE)
    phone.goto(base_url + "/feeds")
    shoot(phone, "feeds-after")


def test_topics_page_preview_then_save(base_url, open_page, env) -> None:
    page = open_page()
    page.goto(base_url + "/topics")
    page.fill("input[name=name]", "troops")
    page.fill("textarea[name=seed_text]", "North Korean soldiers sent to fight for Russia")
    page.fill("textarea[name=descriptions]", "North Korean troops in Russia")
    page.fill("input[name=threshold]", "0.3")
    page.select_option("select[name=window]", "30d")
    page.locator("button", has_text="Preview").click()
    page.wait_for_selector("#preview")
    assert "stored articles would match" in page.locator("#preview h2").inner_text()
    assert page.locator("input[name=name]").input_value() == "troops"  # the form is kept
    shoot(page, "topics-preview")
    assert 'name = "troops"' not in env.config_path.read_text(encoding="utf-8")
    page.locator("button", has_text="Save topic").click()
    page.wait_for_url("**/topics/troops")
    assert page.locator("h1").inner_text() == "troops"
    assert 'name = "troops"' in env.config_path.read_text(encoding="utf-8")
    page.goto(base_url + "/topics/troops/edit")
    page.fill("input[name=threshold]", "0.35")
    page.locator("button", has_text="Save topic").click()
    page.wait_for_url("**/topics/troops")
    assert "threshold 0.35" in page.locator("p.meta").first.inner_text()
    phone = open_page(PHONE)
    phone.goto(base_url + "/topics")
    shoot(phone, "topics-form")


def test_the_read_only_token_signs_in_reads_and_judges_but_cannot_change(
    guarded_url, open_page, env
) -> None:
    page = open_page()
    page.goto(guarded_url + "/feeds")
    page.wait_for_url("**/login")
    page.fill("input[name=token]", READER)
    page.keyboard.press("Enter")
    page.wait_for_url(guarded_url + "/")
    page.goto(guarded_url + "/feeds")
    assert page.locator("header .role").inner_text() == "read-only"
    assert page.locator("form[action='/feeds/import']").count() == 0
    assert page.locator("button.disable").count() == 0
    shoot(page, "feeds-reader")
    page.goto(guarded_url + "/topics")
    assert page.locator("form[action='/topics']").count() == 0
    page.goto(f"{guarded_url}/matches/{env.seeded.matches[0]}")
    page.locator(".judge-box button.not-relevant").click()
    page.wait_for_url(f"**/matches/{env.seeded.matches[0]}")
    assert page.locator(".judge-box .judged").inner_text() == "judged not relevant"
    # a hand-made form post is refused with a page saying why: the role, given the page's
    # CSRF token; the token, without it
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(guarded_url + "/feeds/1/disable", form={"csrf": token})
    assert answer.status == 403
    assert "read-only token" in answer.text()
    bare = page.request.post(guarded_url + "/feeds/1/disable")
    assert bare.status == 403
    assert "carries no CSRF token" in bare.text()


def test_topic_rename_then_delete_from_the_list(base_url, open_page, env) -> None:
    page = open_page()
    page.goto(base_url + "/topics")
    page.locator("tr#topic-alliance a.rename").click()
    page.wait_for_url("**/topics/alliance/rename")
    shoot(page, "topic-rename")
    page.fill("input[name=new_name]", "sanctions")  # taken: one line saying so
    page.locator("button", has_text="Rename topic").click()
    assert 'topic "sanctions" already exists' in page.locator("p.error").inner_text()
    page.fill("input[name=new_name]", "pact")
    page.locator("button", has_text="Rename topic").click()
    page.wait_for_url("**/topics/pact")
    assert page.locator("h1").inner_text() == "pact"
    assert "matches" in page.locator("p.meta").first.inner_text()
    assert 'name = "pact"' in env.config_path.read_text(encoding="utf-8")
    page.goto(base_url + "/topics")
    page.locator("tr#topic-pact a.delete").click()
    page.wait_for_url("**/topics/pact/delete")
    assert "not in config" in page.locator("ul.consequences").inner_text()
    shoot(page, "topic-delete")
    assert 'name = "pact"' in env.config_path.read_text(encoding="utf-8")  # asked, not done
    page.locator("button.danger").click()
    page.wait_for_selector("p.notice")
    assert 'Topic "pact" deleted' in page.locator("p.notice").inner_text()
    assert "(not in config)" in page.locator("tr#topic-pact").inner_text()
    assert 'name = "pact"' not in env.config_path.read_text(encoding="utf-8")
    phone = open_page(PHONE)
    phone.goto(base_url + "/topics/sanctions/delete")
    shoot(phone, "topic-delete")
    phone.goto(base_url + "/topics/sanctions/rename")
    shoot(phone, "topic-rename")


def test_channels_page_sends_a_test_message_and_disables(base_url, open_page, env) -> None:
    with LocalServer() as srv:
        srv.route("/hook/T0KENinPATHabcdef1234567890", Reply(status=204))
        secret_url = srv.url("/hook/T0KENinPATHabcdef1234567890")
        text = env.config_path.read_text(encoding="utf-8")
        text += f'\n[alerts.hook]\ntype = "webhook"\nurl = "{secret_url}"\n'
        env.config_path.write_text(text, encoding="utf-8")
        env.runtime.config = load_config(env.config_path, environ={})
        page = open_page()
        page.goto(base_url + "/channels")
        assert "T0KENinPATH" not in page.content()
        page.locator("tr#channel-hook button.test").click()
        page.wait_for_selector("p.notice")
        assert 'sent through "hook"' in page.locator("p.notice").inner_text()
        assert len(srv.requests_to("/hook/T0KENinPATHabcdef1234567890")) == 1
        shoot(page, "channels-tested")
        page.locator("tr#channel-hook button.disable").click()
        page.wait_for_selector("p.notice")
        assert page.locator("tr#channel-hook td.state-disabled").count() == 1
        assert "enabled = false" in env.config_path.read_text(encoding="utf-8")
        phone = open_page(PHONE)
        phone.goto(base_url + "/channels")
        assert "T0KENinPATH" not in phone.content()
        shoot(phone, "channels")
