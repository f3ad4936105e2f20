"""The HTTP API through FastAPI's TestClient: auth, filters, pages, feedback, health, metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from monitor.api import check_bind, create_app, is_loopback
from monitor.errors import ConfigError
from monitor.store import db, queries
from monitor.store.models import Feedback, Worker
from tests.query.conftest import TOKEN
from tests.query.data import HOSTILE_TITLE
from tests.support.forms import page_token

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# the app answers only to names of this machine (DNS-rebinding guard), not TestClient's default
BASE = "http://localhost"


@pytest.fixture
def open_client(env):
    return TestClient(create_app(env.runtime, token=""), base_url=BASE)


@pytest.fixture
def client(env):
    return TestClient(create_app(env.runtime, token=TOKEN), base_url=BASE)


@pytest.mark.parametrize(
    "path", ["/api/matches", "/api/feeds", "/api/topics", "/api/articles/1", "/metrics"]
)
def test_token_is_required_when_set(client, path) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(path, headers={"Authorization": TOKEN}).status_code == 401
    assert client.get(path, headers=AUTH).status_code == 200
    assert client.post("/api/matches/1/feedback", json={"relevant": True}).status_code == 401


def test_openapi_and_healthz_need_no_token(client) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/matches" in spec["paths"]
    assert "/api/articles/search" in spec["paths"]
    assert client.get("/healthz").status_code in (200, 503)


def test_page_without_token_goes_to_login(client) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert client.post("/login", data={"token": "wrong"}).status_code == 401
    client.post("/login", data={"token": TOKEN})  # sets the cookie on the client
    assert "alliance" in client.get("/").text


def test_binding_beyond_loopback_needs_a_token() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.10")
    check_bind("127.0.0.1", "")
    check_bind("0.0.0.0", "tok")
    with pytest.raises(ConfigError, match=r"api\.token"):
        check_bind("0.0.0.0", "")


def test_serve_refuses_public_host_without_token(env) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "--config",
            str(env.config_path),
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "api.token" in result.stderr
    assert "Traceback" not in result.stderr


def test_matches_filters_and_pages_match_the_cli(open_client, env) -> None:
    body = open_client.get("/api/matches", params={"topic": "alliance", "limit": 5}).json()
    assert len(body["items"]) == 5
    assert body["next_cursor"]
    assert body["items"][0]["title"] == HOSTILE_TITLE  # JSON is data: returned verbatim
    seen = [i["match_id"] for i in body["items"]]
    cursor = body["next_cursor"]
    while cursor:
        page = open_client.get(
            "/api/matches", params={"topic": "alliance", "limit": 5, "cursor": cursor}
        ).json()
        seen += [i["match_id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 13
    week = open_client.get("/api/matches", params={"topic": "sanctions", "since": "7d"}).json()
    assert [i["title"] for i in week["items"]] == ["Sanctions on shipping firms 0"]
    assert (
        open_client.get("/api/matches", params={"min_score": 0.85}).json()["items"][0]["match_id"]
        == env.seeded.hostile_match
    )
    assert open_client.get("/api/matches", params={"topic": "nope"}).status_code == 404
    assert open_client.get("/api/matches", params={"since": "someday"}).status_code == 400
    assert open_client.get("/api/matches", params={"cursor": "zzz"}).status_code == 400
    assert open_client.get("/api/matches", params={"limit": 0}).status_code == 422


def test_article_feeds_topics(open_client, env) -> None:
    article_id = env.seeded.articles[0]
    detail = open_client.get(f"/api/articles/{article_id}").json()
    assert detail["matches"][0]["story"]["id"] == env.seeded.story
    assert {d["channel"] for d in detail["matches"][0]["deliveries"]} == {"console", "email"}
    assert open_client.get("/api/articles/99999").status_code == 404
    feeds = {f["name"]: f["state"] for f in open_client.get("/api/feeds").json()["items"]}
    assert feeds == {"World Desk": "ok", "Berita Dunia": "ok", "Broken Feed": "erroring"}
    topics = {t["name"]: t["matches"] for t in open_client.get("/api/topics").json()["items"]}
    assert topics == {"alliance": 13, "sanctions": 2}


def test_page_feedback_refuses_cross_site_posts(open_client, env) -> None:
    url = f"/feedback/{env.seeded.matches[0]}"
    evil = open_client.post(
        url, data={"relevant": "1"}, headers={"Origin": "http://evil.test"}, follow_redirects=False
    )
    assert evil.status_code == 403
    same = open_client.post(
        url, data={"relevant": "1"}, headers={"Origin": BASE}, follow_redirects=False
    )
    assert same.status_code == 403  # same origin, but no CSRF token (tests/web/test_csrf.py)
    token = page_token(open_client, "/")
    same = open_client.post(
        url,
        data={"relevant": "1", "csrf": token},
        headers={"Origin": BASE},
        follow_redirects=False,
    )
    assert same.status_code == 303
    with db.session_scope(env.runtime.sessions) as s:
        assert [r.relevant for r in s.scalars(select(Feedback))] == [True]


def test_feedback_round_trip(client, env) -> None:
    match_id = env.seeded.matches[2]
    url = f"/api/matches/{match_id}/feedback"
    assert client.post(url, json={"relevant": True}, headers=AUTH).json()["relevant"] is True
    assert client.post(url, json={"relevant": False}, headers=AUTH).status_code == 200
    with db.session_scope(env.runtime.sessions) as s:
        rows = s.scalars(select(Feedback)).all()
        assert [(r.match_id, r.relevant) for r in rows] == [(match_id, False)]
    detail = client.get(f"/api/articles/{env.seeded.articles[2]}", headers=AUTH).json()
    assert detail["matches"][0]["feedback"] is False
    assert (
        client.post(
            "/api/matches/99999/feedback", json={"relevant": True}, headers=AUTH
        ).status_code
        == 404
    )
    assert client.post(url, json={"relevant": "maybe"}, headers=AUTH).status_code == 422


def test_healthz_follows_the_heartbeat(open_client, env) -> None:
    assert open_client.get("/healthz").status_code == 503  # no daemon ever ticked
    with db.session_scope(env.runtime.sessions) as s:
        queries.heartbeat(s, "host:1")
    ok = open_client.get("/healthz")
    assert ok.status_code == 200
    assert ok.json()["status"] == "ok"
    with db.session_scope(env.runtime.sessions) as s:  # the scheduler stalls
        s.get(Worker, "host:1").last_tick_at = datetime.now(UTC) - timedelta(minutes=5)
    stale = open_client.get("/healthz")
    assert stale.status_code == 503
    assert stale.json()["tick_age_s"] >= 299


def test_healthz_is_503_when_the_database_is_gone(env) -> None:
    client = TestClient(create_app(env.runtime, token=""), base_url=BASE)
    with db.session_scope(env.runtime.sessions) as s:
        queries.heartbeat(s, "host:1")
    assert client.get("/healthz").status_code == 200
    env.runtime.engine.dispose()
    db_file = env.config.database_url.split("///", 1)[1]
    import os

    os.chmod(db_file, 0)
    try:
        os.rename(db_file, db_file + ".moved")
        response = client.get("/healthz")
    finally:
        os.rename(db_file + ".moved", db_file)
        os.chmod(db_file, 0o600)
    assert response.status_code == 503
    assert "error" in response.json()["database"]


def test_metrics_parse_as_prometheus_text(client, env) -> None:
    response = client.get("/metrics", headers=AUTH)
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    feeds = {s.labels["state"]: s.value for s in families["monitor_feeds"].samples}
    assert feeds == {"ok": 2, "new": 0, "erroring": 1, "disabled": 0}
    assert families["monitor_articles_stored"].samples[0].value == 18
    # every article has a vector for "test-model", none for the configured model
    assert families["monitor_embedding_backlog"].samples[0].value == 18
    matches = {s.labels["topic"]: s.value for s in families["monitor_matches"].samples}
    assert matches == {"alliance": 13, "sanctions": 2}
    deliveries = {s.labels["status"]: s.value for s in families["monitor_deliveries"].samples}
    assert deliveries == {"pending": 1, "sent": 1}


def test_run_serves_the_api_when_enabled(tmp_path) -> None:
    """`monitor run` with [api] enabled: /healthz turns 200 once the scheduler ticks, and the
    process still stops cleanly on SIGTERM."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from tests.query.conftest import config_text

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "config.toml"
    path.write_text(
        config_text(f"sqlite:///{tmp_path / 'run.db'}").replace(
            'heartbeat_max_age = "60s"', f'heartbeat_max_age = "60s"\nenabled = true\nport = {port}'
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(path), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
            except httpx.TransportError:
                time.sleep(0.3)
        assert status == 200
        assert httpx.get(f"http://127.0.0.1:{port}/api/topics").json()["items"][0]["name"] == (
            "alliance"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_metrics_include_what_stages_register_in_the_process(open_client) -> None:
    """Whatever is registered in prometheus_client's default registry appears on /metrics
    (the stages' duration histograms: see test_api_hardening.py for real ones)."""
    from prometheus_client import REGISTRY, Histogram

    histogram = Histogram("monitor_test_only_duration_seconds", "A histogram of this test.")
    try:
        histogram.observe(0.25)
        text = open_client.get("/metrics").text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        count = [
            s
            for s in families["monitor_test_only_duration_seconds"].samples
            if s.name.endswith("_count")
        ]
        assert count[0].value == 1
    finally:
        REGISTRY.unregister(histogram)


def test_matches_filter_by_feed_tag(open_client, env) -> None:
    """`tag` keeps the matches of feeds carrying it, as `monitor matches --tag` does."""
    from monitor.store import db
    from monitor.store.models import Feed

    with db.session_scope(env.runtime.sessions) as session:
        session.get(Feed, env.seeded.feeds["Berita Dunia"]).tags = ["asia"]
    items = open_client.get("/api/matches", params={"tag": "Asia", "limit": 100}).json()["items"]
    assert items
    assert {item["source"] for item in items} == {"Berita Dunia"}
    none = open_client.get("/api/matches", params={"tag": "nowhere"}).json()
    assert none["items"] == []
