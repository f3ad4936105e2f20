"""Slack and webhook deliveries through a real loopback HTTP server that records requests and
answers 500, 429 with Retry-After, 400, or hangs: retries happen, order is kept, nothing is lost
and nothing is sent twice (counted by idempotency key at the receiver)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from monitor.alert.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from monitor.pipeline.delivery import dispatch_due
from monitor.store import db
from monitor.store.models import DeliveryAttempt
from tests.alerts.conftest import Env
from tests.support.httpserver import LocalServer, Recorded, Reply


@pytest.fixture
def receiver() -> Iterator[LocalServer]:
    with LocalServer() as server:
        server.route("/hook", Reply(status=200, body=b"ok"))
        server.route("/slack", Reply(status=200, body=b"ok"))
        yield server


def hook_channels(server: LocalServer, timeout: str = "2s") -> str:
    return f"""
    [alerts.hook]
    type = "webhook"
    url = "{server.url("/hook")}"
    secret = "s3cret"
    timeout = "{timeout}"

    [alerts.slack]
    type = "slack"
    url = "{server.url("/slack")}"
    timeout = "{timeout}"
    """


def keys(requests: list[Recorded]) -> list[str]:
    return [r.header("Idempotency-Key") or "" for r in requests]


def sequence(statuses: list[Reply]) -> Callable[[Recorded], Reply]:
    """Answer with each reply in turn, then 200 for ever."""
    replies = list(statuses)
    return lambda _req: replies.pop(0) if replies else Reply(status=200, body=b"ok")


def test_webhook_posts_signed_json_with_idempotency_key(
    make_env: Callable[..., Env], receiver: LocalServer
) -> None:
    env = make_env(hook_channels(receiver))
    first = env.match("Kim meets Putin", feed="Wire")
    second = env.match("Second story")
    report = dispatch_due(env.runtime)
    assert report.sent == 2
    requests = receiver.requests_to("/hook")
    assert keys(requests) == [f"match-{first}-hook", f"match-{second}-hook"]
    body = json.loads(requests[0].body)
    assert body["id"] == f"match-{first}-hook"
    assert body["kind"] == "alert"
    assert body["alerts"][0]["title"] == "Kim meets Putin"
    assert body["alerts"][0]["source"] == "Wire"
    assert body["alerts"][0]["passage"] == "the passage that matched"
    stamp = requests[0].header(TIMESTAMP_HEADER) or ""
    assert requests[0].header(SIGNATURE_HEADER) == sign("s3cret", stamp, requests[0].body)
    assert dispatch_due(env.runtime).sent == 0  # nothing sent twice
    assert {d.status for d in env.deliveries()} == {"sent"}


def test_500_is_retried_with_backoff_and_order_is_kept(
    make_env: Callable[..., Env], receiver: LocalServer
) -> None:
    receiver.route(
        "/hook", sequence([Reply(status=500, body=b"boom"), Reply(status=502, body=b"bad gateway")])
    )
    env = make_env(hook_channels(receiver))
    ids = [env.match(f"alert {i}") for i in range(3)]
    report = dispatch_due(env.runtime)
    # the head failed: the later alerts wait behind it instead of overtaking it
    assert (report.sent, report.retried) == (0, 1)
    assert len(receiver.requests_to("/hook")) == 1
    head = env.deliveries()[0]
    assert head.status == "pending"
    assert "HTTP 500" in head.last_error
    assert "boom" in head.last_error
    assert dispatch_due(env.runtime).sent == 0  # not due yet: backoff holds it
    env.clock.advance(minutes=3)
    assert dispatch_due(env.runtime).retried == 1
    env.clock.advance(minutes=3)
    assert dispatch_due(env.runtime).sent == 3
    received = keys(receiver.requests_to("/hook"))
    expected = [f"match-{i}-hook" for i in ids]
    assert received == [expected[0], expected[0], expected[0], expected[1], expected[2]]
    with db.session_scope(env.runtime.sessions) as session:
        attempts = session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == head.id)
            .order_by(DeliveryAttempt.id)
        ).all()
        assert [a.ok for a in attempts] == [False, False, True]
        assert "HTTP 502" in attempts[1].error


def test_429_retry_after_is_honoured(make_env: Callable[..., Env], receiver: LocalServer) -> None:
    receiver.route(
        "/slack",
        sequence([Reply(status=429, body=b"rate_limited", headers={"Retry-After": "600"})]),
    )
    env = make_env(
        hook_channels(receiver),
        topics="""
    [[topics]]
    name = "t1"
    descriptions = ["x"]
    channels = ["slack"]
    """,
    )
    env.match("rate limited")
    assert dispatch_due(env.runtime).retried == 1
    env.clock.advance(seconds=590)  # past retry_cap (2m) but before Retry-After
    assert dispatch_due(env.runtime).sent == 0
    env.clock.advance(seconds=11)
    assert dispatch_due(env.runtime).sent == 1
    assert len(receiver.requests_to("/slack")) == 2


def test_hanging_server_times_out_and_receiver_dedupes_by_key(
    make_env: Callable[..., Env], receiver: LocalServer
) -> None:
    receiver.route("/hook", sequence([Reply(status=200, body=b"late", delay_s=2.5)]))
    env = make_env(hook_channels(receiver, timeout="0.5s"))
    match_id = env.match("slow receiver")
    report = dispatch_due(env.runtime)
    assert report.retried == 1
    assert "timeout" in env.deliveries()[0].last_error
    env.clock.advance(minutes=5)
    assert dispatch_due(env.runtime).sent == 1
    # the hung request did reach the server: the same key twice, which the receiver dedupes
    received = keys(receiver.requests_to("/hook"))
    assert received == [f"match-{match_id}-hook"] * 2
    assert len(set(received)) == 1


def test_slack_block_kit_and_permanent_400_fails_loudly(
    make_env: Callable[..., Env], receiver: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env(
        hook_channels(receiver),
        topics="""
    [[topics]]
    name = "t1"
    descriptions = ["x"]
    channels = ["slack"]
    """,
    )
    env.match("<b>Kim</b> & Putin", link="https://news.example/kim")
    assert dispatch_due(env.runtime).sent == 1
    payload = json.loads(receiver.requests_to("/slack")[0].body)
    assert payload["blocks"][0]["text"]["text"] == (
        "*<https://news.example/kim|&lt;b&gt;Kim&lt;/b&gt; &amp; Putin>*"
    )
    context = payload["blocks"][1]["elements"][0]["text"]
    assert "*Source:* Feed A" in context
    assert "*Topic:* t1" in context
    assert "*Score:* 0.80" in context
    assert "*Published:*" in context
    assert payload["blocks"][2]["text"]["text"] == (
        "summary\n_Closest seed passage:_\n> the passage that matched"
    )

    receiver.route("/slack", Reply(status=400, body=b"invalid_blocks"))
    env.match("rejected")
    with caplog.at_level(logging.ERROR):
        report = dispatch_due(env.runtime)
    assert report.failed == 1
    failed = env.deliveries()[-1]
    assert failed.status == "failed"
    assert "HTTP 400" in failed.last_error
    assert "invalid_blocks" in failed.last_error
    assert any("GIVING UP" in r.getMessage().upper() for r in caplog.records)


def test_gives_up_after_the_configured_time(
    make_env: Callable[..., Env], receiver: LocalServer
) -> None:
    receiver.route("/hook", Reply(status=503, body=b"down"))
    env = make_env(hook_channels(receiver))
    env.match("never delivered")
    for _ in range(40):
        dispatch_due(env.runtime)
        env.clock.advance(minutes=2)
        if env.deliveries()[0].status == "failed":
            break
    row = env.deliveries()[0]
    assert row.status == "failed"
    assert row.attempts > 10  # retried for the whole hour (give_up_after) first
    assert (env.clock() - row.created_at).total_seconds() >= 3600
