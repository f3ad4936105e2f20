"""Per-session CSRF tokens on the web app's forms: a form POST without the token its page
served, or with another session's, is refused with a page saying why, even from the same
origin; every POST form of every page carries one; what something else authenticates (the
bearer token, a signed judgement link, the login form) works without one."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from monitor import signing
from monitor.api import create_app
from monitor.store import db
from monitor.store.models import Feed, Feedback
from monitor.web.csrf import CSRF_COOKIE
from tests.support.forms import page_token
from tests.web.conftest import ADMIN, BASE, READER

SAME_ORIGIN = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}


def _signed_in(env, token: str = ADMIN) -> TestClient:
    """A browser-like client signed in through /login (a session cookie, no bearer)."""
    client = TestClient(create_app(env.runtime, token=ADMIN, read_token=READER), base_url=BASE)
    assert client.post("/login", data={"token": token}, follow_redirects=False).status_code == 303
    return client


def _changes(env) -> tuple[int, int, str]:
    with db.session_scope(env.runtime.sessions) as s:
        feedback = s.scalar(select(func.count()).select_from(Feedback))
        disabled = s.scalar(select(func.count()).select_from(Feed).where(Feed.enabled.is_(False)))
    return int(feedback or 0), int(disabled or 0), env.config_path.read_text(encoding="utf-8")


def _forms(env) -> dict[str, dict[str, str]]:
    """A POST of each kind of form: path -> fields (without the token)."""
    first = env.seeded.matches[0]
    return {
        f"/feedback/{first}": {"relevant": "1"},
        f"/matches/{first}/judge": {"relevant": "0"},
        f"/feeds/{env.seeded.feeds['Broken Feed']}/disable": {},
        "/feeds": {"url": "http://127.0.0.1:9/feed.xml"},
        "/topics": {"name": "troops", "descriptions": "North Korean troops", "threshold": "0.3"},
        "/topics/alliance/rename": {"new_name": "pact"},
        "/topics/alliance/delete": {},
    }


@pytest.mark.parametrize("signed_in", [True, False], ids=["session", "no-token-server"])
def test_a_form_without_the_token_is_refused_even_from_the_same_origin(
    env, open_client, signed_in
) -> None:
    client = _signed_in(env) if signed_in else TestClient(open_client.app, base_url=BASE)
    page_token(client, "/topics")  # the browser has its CSRF cookie, but posts no field
    before = _changes(env)
    for path, fields in _forms(env).items():
        answer = client.post(path, data=fields, headers=SAME_ORIGIN, follow_redirects=False)
        assert answer.status_code == 403, path
        assert "carries no CSRF token" in answer.text, path
        assert "<h1>Not allowed</h1>" in answer.text  # a page, for the person who sent it
    assert _changes(env) == before


def test_a_token_of_another_session_or_browser_is_refused(env) -> None:
    admin = _signed_in(env)
    reader = _signed_in(env, READER)
    first = env.seeded.matches[0]
    theirs = page_token(reader, "/matches")
    page_token(admin, "/matches")
    admin.cookies.delete(CSRF_COOKIE)  # the same browser nonce: only the session differs
    admin.cookies.set(CSRF_COOKIE, reader.cookies.get(CSRF_COOKIE))
    answer = admin.post(
        f"/matches/{first}/judge", data={"relevant": "1", "csrf": theirs}, headers=SAME_ORIGIN
    )
    assert answer.status_code == 403
    assert "wrong or belongs to another session" in answer.text
    mine = page_token(admin, "/matches")
    admin.cookies.delete(CSRF_COOKIE)
    admin.cookies.set(CSRF_COOKIE, "another-browser")  # the token no longer fits the cookie
    answer = admin.post(f"/matches/{first}/judge", data={"relevant": "1", "csrf": mine})
    assert answer.status_code == 403
    assert _changes(env)[0] == 0


def test_the_pages_token_lets_the_form_through(env) -> None:
    admin = _signed_in(env)
    first = env.seeded.matches[0]
    token = page_token(admin, f"/matches/{first}")
    answer = admin.post(
        f"/matches/{first}/judge",
        data={"relevant": "1", "csrf": token},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert _changes(env)[0] == 1


def test_every_post_form_of_every_page_carries_the_token(open_client, env) -> None:
    pages = ["/", "/matches", f"/matches/{env.seeded.matches[0]}", "/topics", "/feeds"]
    pages += ["/topics/alliance/edit", "/topics/alliance/rename", "/topics/alliance/delete"]
    for path in pages:
        html = open_client.get(path).text
        forms = re.findall(r"<form[^>]*>.*?</form>", html, flags=re.DOTALL)
        posts = [f for f in forms if 'method="post"' in f]
        assert posts or path == "/matches", path
        for form in posts:
            assert re.search(r'name="csrf" value="[0-9a-f]{64}"', form), (path, form[:120])


def test_what_something_else_authenticates_needs_no_form_token(env, make_client) -> None:
    first = env.seeded.matches[0]
    bearer = make_client(ADMIN)  # the API's bearer token: no cookie a site could ride on
    feeds = {"Authorization": f"Bearer {ADMIN}"}
    api = bearer.post(f"/api/matches/{first}/feedback", json={"relevant": True}, headers=feeds)
    assert api.status_code == 200
    form = TestClient(bearer.app, base_url=BASE).post(
        f"/matches/{first}/judge", data={"relevant": "0"}, headers=feeds, follow_redirects=False
    )
    assert form.status_code == 303
    key = signing.server_key(ADMIN)
    link = signing.judgement_path(key, first, "relevant")  # from an email: no page, no token
    judged = TestClient(bearer.app, base_url=BASE).post(link)
    assert judged.status_code == 200
    assert "judged" in judged.text or "relevant" in judged.text


def test_a_broken_form_body_is_refused_not_a_server_error(open_client) -> None:
    plain = TestClient(open_client.app, base_url=BASE, raise_server_exceptions=False)
    page_token(plain, "/feeds")
    bogus = (
        b'--x\r\nContent-Disposition: form-data; name="csrf"\r\n'
        b"Content-Type: text/plain; charset=bogus-9\r\n\r\nabc\r\n--x--\r\n"
    )
    for kind, body in [
        ("multipart/form-data; boundary=x", bogus),
        ("multipart/form-data; boundary=x", b"garbage"),
        ("application/x-www-form-urlencoded", b"%%%csrf=%ZZ"),
        ("text/plain", b"csrf=abc"),
    ]:
        answer = plain.post("/feeds/import", content=body, headers={"Content-Type": kind})
        assert answer.status_code == 403, (kind, answer.text)
