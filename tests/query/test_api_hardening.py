"""The HTTP API against hostile browsers and bad requests, over real HTTP to a running uvicorn
(issue 12: #8 DNS rebinding, and the Low items /docs offline, stage histograms on /metrics,
400 for out-of-range dates and ids, 413 for large bodies)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from monitor.api import (
    COOKIE,
    MAX_BODY_BYTES,
    SESSION_MAX_AGE_S,
    create_app,
    make_session,
    valid_session,
)
from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.pipeline.cycle import run_once
from monitor.pipeline.delivery import dispatch_due
from monitor.pipeline.runtime import open_runtime
from monitor.store import db
from monitor.store.models import Delivery, Feedback
from tests.conftest import FIXTURES
from tests.query.conftest import TOKEN, config_text
from tests.support.appserver import serve
from tests.support.forms import TOKEN_FIELD
from tests.support.httpserver import LocalServer, Reply

HUGE_ID = "99999999999999999999"  # beyond 64 bits


@pytest.fixture
def open_api(env) -> Iterator[str]:
    """The token-less loopback API, the case DNS rebinding attacks."""
    with serve(create_app(env.runtime, token="")) as url:
        yield url


@pytest.fixture
def token_api(env) -> Iterator[str]:
    with serve(create_app(env.runtime, token=TOKEN)) as url:
        yield url


def feedback_rows(env) -> list[tuple[int, bool]]:
    with db.session_scope(env.runtime.sessions) as s:
        return [(r.match_id, r.relevant) for r in s.scalars(select(Feedback))]


# -- DNS rebinding and cross-site requests ------------------------------------------------------


def test_a_foreign_host_is_refused_even_for_a_feedback_post(open_api, env) -> None:
    """A page on evil.test whose name re-resolves to 127.0.0.1 sends Host and Origin evil.test."""
    port = open_api.rsplit(":", 1)[1]
    match_id = env.seeded.matches[0]
    rebound = {"Host": f"evil.test:{port}", "Origin": f"http://evil.test:{port}"}
    post = httpx.post(
        f"{open_api}/api/matches/{match_id}/feedback", json={"relevant": True}, headers=rebound
    )
    assert post.status_code == 400
    assert "api.allowed_hosts" in post.json()["detail"]
    form = httpx.post(f"{open_api}/feedback/{match_id}", data={"relevant": "1"}, headers=rebound)
    assert form.status_code == 400
    read = httpx.get(f"{open_api}/api/matches", headers={"Host": "evil.test"})
    assert read.status_code == 400
    assert feedback_rows(env) == []
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", "127.0.0.2"):
        assert httpx.get(f"{open_api}/api/topics", headers={"Host": host}).status_code == 200


def test_a_cross_site_post_is_refused_with_a_local_host(open_api, env) -> None:
    match_id = env.seeded.matches[0]
    url = f"{open_api}/api/matches/{match_id}/feedback"
    for origin in ("http://evil.test", "null", "http://localhost:3000"):
        response = httpx.post(url, json={"relevant": True}, headers={"Origin": origin})
        assert response.status_code == 403, origin
    referer = httpx.post(
        f"{open_api}/feedback/{match_id}",
        data={"relevant": "1"},
        headers={"Referer": "http://evil.test/page.html"},
    )
    assert referer.status_code == 403
    assert feedback_rows(env) == []
    same = httpx.post(url, json={"relevant": False}, headers={"Origin": open_api})
    assert same.status_code == 200
    scripted = httpx.post(url, json={"relevant": True})  # curl, scripts: no Origin at all
    assert scripted.status_code == 200
    assert feedback_rows(env) == [(match_id, True)]


def test_a_feedback_post_is_committed_before_its_answer(open_api, env) -> None:
    """Two judgements in a row, the second sent as soon as the first is answered: both are
    answered 200, so the second must be what is stored (it used to be committed after its
    answer, collided with the first one's still-open insert and was lost)."""
    matches = env.seeded.matches[2:7]
    for match_id in matches:
        url = f"{open_api}/api/matches/{match_id}/feedback"
        assert httpx.post(url, json={"relevant": True}).status_code == 200
        assert httpx.post(url, json={"relevant": False}).status_code == 200
    assert sorted(feedback_rows(env)) == [(m, False) for m in matches]


def test_configured_names_are_served(tmp_path: Path, sqlite_url: str) -> None:
    """api.allowed_hosts: a proxy's public name (and its Origin) and a wildcard subdomain."""
    path = tmp_path / "config.toml"
    path.write_text(
        config_text(sqlite_url).replace(
            'heartbeat_max_age = "60s"',
            'heartbeat_max_age = "60s"\nallowed_hosts = ["monitor.internal", "*.corp.example"]',
        ),
        encoding="utf-8",
    )
    runtime = open_runtime(load_config(path, environ={}))
    try:
        with serve(create_app(runtime, token="")) as url:

            def status(host: str, origin: str = "") -> int:
                headers = {"Host": host} | ({"Origin": origin} if origin else {})
                return httpx.post(f"{url}/login", headers=headers).status_code

            assert status("monitor.internal") == 401  # reached the route: no token configured
            assert status("mon.corp.example:443") == 401
            assert status("corp.example.evil.test") == 400
            assert status("127.0.0.1", origin="https://monitor.internal") == 401  # via a proxy
            assert status("127.0.0.1", origin="https://evil.test") == 403
    finally:
        runtime.close()


def test_allowed_hosts_must_be_host_names(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        config_text(sqlite_url).replace(
            'heartbeat_max_age = "60s"',
            'heartbeat_max_age = "60s"\nallowed_hosts = ["https://monitor.internal/"]',
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"config\.toml:\d+: api\.allowed_hosts: expected a host"):
        load_config(path, environ={})


def test_every_answer_carries_the_security_headers(open_api) -> None:
    for path, headers in (("/", {}), ("/api/topics", {}), ("/docs", {}), ("/", {"Host": "x"})):
        response = httpx.get(open_api + path, headers=headers)
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["x-content-type-options"] == "nosniff", path
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp


class InlineCode(HTMLParser):
    """Collects what a strict CSP blocks: inline scripts, <style> elements, style="" and on*=
    attributes (text that merely looks like them, such as an escaped feed title, is not)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _value in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{tag} {n}=" for n in names if n == "style" or n.startswith("on")]


@pytest.mark.parametrize("path", ["/", "/login", "/docs"])
def test_pages_need_no_inline_script_or_style(open_api, path) -> None:
    """The strict CSP would block inline code, so the pages must have none."""
    parser = InlineCode()
    parser.feed(httpx.get(open_api + path).text)
    assert parser.found == []


# -- the login cookie ---------------------------------------------------------------------------


def test_login_sets_a_signed_session_not_the_token(token_api) -> None:
    with httpx.Client(base_url=token_api) as client:
        assert client.get("/api/topics").status_code == 401
        login = client.post("/login", data={"token": TOKEN})
        assert login.status_code == 303
        cookie = login.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert TOKEN not in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert client.get("/").status_code == 200  # the session cookie opens the page
        assert client.get("/api/topics").status_code == 200
    forged = {COOKIE: make_session("another-token")}
    assert httpx.get(f"{token_api}/api/topics", cookies=forged).status_code == 401
    raw = {COOKIE: TOKEN}
    assert httpx.get(f"{token_api}/api/topics", cookies=raw).status_code == 401
    old_style = {"monitor_token": TOKEN}  # the cookie that held the token itself
    assert httpx.get(f"{token_api}/api/topics", cookies=old_style).status_code == 401


def test_sessions_expire_and_end_with_the_token() -> None:
    issued = 1_800_000_000.0
    value = make_session(TOKEN, now=issued)
    assert valid_session(TOKEN, value, now=issued + 60)
    assert not valid_session(TOKEN, value, now=issued + SESSION_MAX_AGE_S + 1)
    assert not valid_session("rotated-token", value, now=issued + 60)
    stamp, mac = value.split(".")
    assert not valid_session(TOKEN, f"{int(stamp) + 1}.{mac}", now=issued + 60)
    assert not valid_session(TOKEN, "", now=issued)


# -- /docs offline ------------------------------------------------------------------------------


def test_docs_are_served_from_this_server(open_api) -> None:
    html = httpx.get(f"{open_api}/docs").text
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert refs, html
    assert not [r for r in refs if "//" in r], "an external host is referenced"
    types = {}
    for ref in refs:
        response = httpx.get(open_api + ref)
        assert response.status_code == 200, ref
        assert len(response.content) > 10
        types[ref.rsplit(".", 1)[-1]] = response.headers["content-type"]
    assert types["js"].startswith("text/javascript")
    assert types["css"].startswith("text/css")
    assert "SwaggerUIBundle" in httpx.get(f"{open_api}/static/swagger-ui-bundle.js").text
    assert httpx.get(f"{open_api}/static/..%2Fconfig.py").status_code == 404
    assert httpx.get(f"{open_api}/redoc").status_code == 404  # its script came from a CDN


# -- bad parameters and large bodies -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "words"),
    [
        ("GET", "/api/matches?since=99999999d", "since"),
        ("GET", "/api/matches?until=99999999d", "until"),
        ("GET", "/api/articles/search?q=troops&since=99999999d", "since"),
        ("GET", f"/api/articles/{HUGE_ID}", "article id"),
        ("POST", f"/api/matches/{HUGE_ID}/feedback", "match id"),
        ("GET", f"/api/matches?feed={HUGE_ID}", "out of range"),
        ("GET", f"/api/matches?topic={HUGE_ID}", "out of range"),
    ],
)
def test_out_of_range_parameters_are_400_with_the_reason(open_api, method, path, words) -> None:
    response = httpx.request(method, open_api + path, json={"relevant": True})
    assert response.status_code == 400, response.text
    assert words in response.json()["detail"]


def test_an_out_of_range_id_in_a_page_form_is_400_with_the_reason(open_api) -> None:
    with httpx.Client(base_url=open_api) as browser:  # keeps the CSRF cookie, as a browser
        token = TOKEN_FIELD.search(browser.get("/").text).group(1)
        response = browser.post(f"/feedback/{HUGE_ID}", data={"relevant": "1", "csrf": token})
    assert response.status_code == 400, response.text
    assert "match id" in response.json()["detail"]


def test_request_bodies_have_a_size_limit(open_api, env) -> None:
    url = f"{open_api}/api/matches/{env.seeded.matches[0]}/feedback"
    big = b'{"relevant": true, "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert httpx.post(url, content=big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"relevant": true, "pad": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    assert httpx.post(url, content=chunks()).status_code == 413
    form = httpx.post(f"{open_api}/login", content=b"token=" + b"x" * (MAX_BODY_BYTES + 1))
    assert form.status_code == 413
    assert feedback_rows(env) == []
    small = httpx.post(
        url,
        content=b'{"relevant": true, "pad": "' + b"x" * 1000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert small.status_code == 200


# -- stage histograms on /metrics ---------------------------------------------------------------

STAGES = ("fetch", "parse", "embed", "deliver")


def stage_counts(text: str) -> dict[str, float]:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    counts = {}
    for stage in STAGES:
        family = families[f"monitor_{stage}_duration_seconds"]
        assert family.type == "histogram"
        [count] = [s.value for s in family.samples if s.name.endswith("_count")]
        counts[stage] = count
    return counts


def test_a_poll_a_match_and_a_send_fill_the_stage_histograms(
    tmp_path: Path, sqlite_url: str, embedder: object
) -> None:
    before = {
        s: REGISTRY.get_sample_value(f"monitor_{s}_duration_seconds_count") or 0.0 for s in STAGES
    }
    path = tmp_path / "config.toml"
    with LocalServer() as feeds:
        feeds.route(
            "/feed.xml",
            Reply(
                body=(FIXTURES / "feeds" / "rss20.xml").read_bytes(),
                headers={"Content-Type": "application/rss+xml"},
            ),
        )
        path.write_text(
            config_text(sqlite_url)
            + textwrap.dedent(f"""
            [[feeds]]
            url = "{feeds.url("/feed.xml")}"
            """),
            encoding="utf-8",
        )
        runtime = open_runtime(load_config(path, environ={}))
        try:
            report = run_once(runtime)  # poll (fetch + parse) and match (embed)
            assert report.poll.articles_stored == 2
            assert report.match.embedded == 2
            with db.session_scope(runtime.sessions) as s:  # a notice through the console channel
                s.add(Delivery(channel="console", kind="test", idempotency_key="metrics-test"))
            assert dispatch_due(runtime).sent == 1
            with serve(create_app(runtime, token="")) as url:
                after = stage_counts(httpx.get(f"{url}/metrics").text)
        finally:
            runtime.close()
    for stage in STAGES:
        assert after[stage] > before[stage], stage
