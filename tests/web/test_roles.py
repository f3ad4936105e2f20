"""The read-only token: reads every page and route and judges matches, but cannot change
feeds, topics or channels, on the HTML pages and on the /api routes alike."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.store import db
from monitor.store.models import Feed, Feedback
from tests.web.conftest import ADMIN, BASE, READER

READ_PAGES = ["/", "/matches", "/topics", "/topics/alliance", "/feeds", "/feeds/export.opml"]
READ_API = ["/api/matches", "/api/feeds", "/api/topics", "/metrics"]
# every change of feeds or topics, as (path, form or json)
ADMIN_FORMS = [
    ("/feeds", {"url": "http://127.0.0.1:9/feed.xml"}),
    ("/feeds/1/disable", {}),
    ("/topics", {"name": "x", "descriptions": "about x", "threshold": "0.5"}),
    ("/topics/preview", {"name": "x", "descriptions": "about x", "threshold": "0.5"}),
]


@pytest.mark.parametrize("path", READ_PAGES + READ_API)
def test_both_tokens_read_everything_and_no_token_reads_nothing(make_client, path) -> None:
    assert make_client(READER).get(path).status_code == 200
    assert make_client(ADMIN).get(path).status_code == 200
    anonymous = make_client("").get(path, follow_redirects=False)
    assert anonymous.status_code in (303, 401)  # pages send to /login, the API answers 401
    assert make_client("wrong").get(path, follow_redirects=False).status_code in (303, 401)


def test_the_reader_judges_on_the_page_and_through_the_api(make_client, env) -> None:
    reader = make_client(READER)
    first, second = env.seeded.matches[0], env.seeded.matches[1]
    page = reader.post(f"/matches/{first}/judge", data={"relevant": "0"}, follow_redirects=False)
    assert page.status_code == 303
    assert (
        reader.post(f"/api/matches/{second}/feedback", json={"relevant": True}).status_code == 200
    )
    with db.session_scope(env.runtime.sessions) as s:
        judged = {(f.match_id, f.relevant) for f in s.scalars(select(Feedback))}
    assert judged == {(first, False), (second, True)}


@pytest.mark.parametrize(("path", "form"), ADMIN_FORMS)
def test_the_reader_cannot_change_feeds_or_topics_on_pages(make_client, env, path, form) -> None:
    before = env.config_path.read_text(encoding="utf-8")
    answer = make_client(READER).post(path, data=form)
    assert answer.status_code == 403
    assert "read-only token" in answer.text
    assert env.config_path.read_text(encoding="utf-8") == before
    with db.session_scope(env.runtime.sessions) as s:
        assert all(f.enabled for f in s.scalars(select(Feed)))
        assert s.scalar(select(Feed).where(Feed.url.contains("127.0.0.1:9"))) is None


def test_the_reader_cannot_import_opml(make_client) -> None:
    opml = b'<opml version="2.0"><body><outline xmlUrl="http://x.test/f.xml"/></body></opml>'
    answer = make_client(READER).post(
        "/feeds/import", files={"opml": ("list.opml", opml, "text/xml")}
    )
    assert answer.status_code == 403


def test_the_reader_cannot_change_feeds_through_the_api(make_client, env) -> None:
    reader, admin = make_client(READER), make_client(ADMIN)
    feed_id = env.seeded.feeds["Broken Feed"]
    new = {"url": "http://127.0.0.1:9/new.xml", "discover": False}
    assert reader.post("/api/feeds", json=new).status_code == 403
    assert reader.post(f"/api/feeds/{feed_id}/disable").status_code == 403
    assert make_client("").post("/api/feeds", json=new).status_code == 401
    added = admin.post("/api/feeds", json=new)
    assert added.status_code == 200, added.text
    assert admin.post(f"/api/feeds/{feed_id}/disable").json()["enabled"] is False
    with db.session_scope(env.runtime.sessions) as s:
        assert s.get(Feed, feed_id).enabled is False
        assert s.scalar(select(Feed).where(Feed.url == new["url"])) is not None


def test_reader_forms_are_hidden_and_admin_forms_shown(make_client) -> None:
    reader_page = make_client(READER).get("/feeds").text
    assert 'action="/feeds/import"' not in reader_page
    assert "read-only" in reader_page
    assert 'action="/feeds/import"' in make_client(ADMIN).get("/feeds").text
    assert 'action="/topics"' not in make_client(READER).get("/topics").text


def test_login_with_the_read_token_gives_a_reader_session(make_client) -> None:
    client = make_client("")
    assert client.post("/login", data={"token": READER}, follow_redirects=False).status_code == 303
    assert client.get("/matches", follow_redirects=False).status_code == 200
    assert client.post("/feeds/1/disable", follow_redirects=False).status_code == 403
    admin = make_client("")
    admin.post("/login", data={"token": ADMIN}, follow_redirects=False)
    assert "Disable" in admin.get("/feeds").text


def test_the_reader_session_cannot_pass_for_an_admin_one(make_client) -> None:
    from monitor.api import COOKIE, make_session

    client = make_client("")
    client.cookies.set(COOKIE, make_session(READER))
    assert client.get("/matches", follow_redirects=False).status_code == 200
    assert client.post("/feeds/1/disable", follow_redirects=False).status_code == 403


def test_read_token_needs_the_admin_token_and_must_differ(tmp_path) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError, match=r"read_token needs api\.token"):
        parse_config('[api]\nread_token = "r"\n', path)
    with pytest.raises(ConfigError, match="must differ"):
        parse_config('[api]\ntoken = "same"\nread_token = "same"\n', path)
    assert parse_config('[api]\ntoken = "a"\nread_token = "r"\n', path).api.read_token


def test_without_any_token_every_caller_is_admin(open_client) -> None:
    assert open_client.post("/feeds/1/disable").status_code == 200
    assert BASE == "http://localhost"
