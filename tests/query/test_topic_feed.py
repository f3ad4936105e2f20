"""`/topics/{name}/feed.xml`: a topic's alerted matches as Atom, read by feedparser, checked
for the elements RFC 4287 requires, newest first, hostile titles escaped, and the per-topic
read token (from `monitor topics feed-url`) as the only way in without the API token."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import feedparser
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from monitor import signing
from monitor.api import create_app
from monitor.store import db
from monitor.store.models import Match
from tests.query.conftest import TOKEN
from tests.query.data import HOSTILE_TITLE

A = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
KEY = signing.server_key(TOKEN)
assert KEY is not None


@pytest.fixture
def client(env) -> TestClient:
    return TestClient(create_app(env.runtime, token=TOKEN), base_url="http://localhost")


def feed_url(topic: str) -> str:
    return signing.feed_path(KEY, topic)


def check_atom(body: bytes) -> ET.Element:
    """The elements RFC 4287 requires: feed id/title/updated (author on every entry instead of
    the feed), entry id/title/updated and an alternate link, dates in RFC 3339."""
    root = ET.fromstring(body)
    assert root.tag == f"{A}feed"
    for name in ("id", "title", "updated"):
        assert len(root.findall(f"{A}{name}")) == 1, name
    assert RFC3339.match(root.findtext(f"{A}updated") or "")
    for entry in root.findall(f"{A}entry"):
        for name in ("id", "title", "updated"):
            assert len(entry.findall(f"{A}{name}")) == 1, name
        assert RFC3339.match(entry.findtext(f"{A}updated") or "")
        assert entry.findtext(f"{A}author/{A}name")
        [link] = [x for x in entry.findall(f"{A}link") if x.get("rel") == "alternate"]
        assert urlsplit(link.get("href") or "").scheme in ("http", "https")
    ids = [e.findtext(f"{A}id") for e in root.findall(f"{A}entry")]
    assert len(set(ids)) == len(ids)
    return root


def test_feed_is_valid_atom_newest_first_with_hostile_titles_escaped(env, client) -> None:
    with db.session_scope(env.runtime.sessions) as session:  # a story joiner: never alerted
        session.execute(
            update(Match).where(Match.id == env.seeded.matches[3]).values(alerted=False)
        )
    response = client.get(feed_url("alliance"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    check_atom(response.content)
    parsed = feedparser.parse(response.content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "monitor: alliance"
    titles = [e.title for e in parsed.entries]
    assert titles[0] == HOSTILE_TITLE  # the newest match, its title as text
    assert b"<script" not in response.content
    assert b"&lt;script&gt;" in response.content
    assert "North Korean troops story 3" not in titles  # not alerted
    assert len(titles) == 1 + 12 - 1
    published = [datetime(*e.published_parsed[:6]) for e in parsed.entries]
    assert published == sorted(published, reverse=True)
    hostile = parsed.entries[0]
    assert not hostile.link.lower().startswith("javascript")
    assert "Closest seed passage: <b>bold</b> passage & <i>more</i>" in hostile.summary
    assert "Sanctions" not in " ".join(titles)


def test_read_token_opens_its_own_topic_only(client) -> None:
    assert client.get("/topics/alliance/feed.xml").status_code == 401
    assert client.get("/topics/alliance/feed.xml?token=wrong").status_code == 401
    other = signing.feed_token(KEY, "sanctions")  # type: ignore[arg-type]
    assert client.get(f"/topics/alliance/feed.xml?token={other}").status_code == 401
    assert client.get(feed_url("alliance")).status_code == 200
    assert client.get(feed_url("sanctions")).status_code == 200
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/topics/alliance/feed.xml", headers=bearer).status_code == 200
    assert client.get(feed_url("no-such-topic")).status_code == 404


def test_without_an_api_token_the_feed_is_open_like_the_rest(env) -> None:
    open_client = TestClient(create_app(env.runtime, token=""), base_url="http://localhost")
    response = open_client.get("/topics/sanctions/feed.xml")
    assert response.status_code == 200
    assert len(feedparser.parse(response.content).entries) == 2


def test_cli_prints_the_url_a_feed_reader_subscribes_to(env, client) -> None:
    command = [sys.executable, "-m", "monitor", "--config", str(env.config_path)]
    result = subprocess.run(
        [*command, "topics", "feed-url", "alliance"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"TEST_API_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    url = urlsplit(result.stdout.strip())
    assert (url.scheme, url.netloc, url.path) == (
        "http",
        "127.0.0.1:8080",
        "/topics/alliance/feed.xml",
    )
    assert client.get(f"{url.path}?{url.query}").status_code == 200
