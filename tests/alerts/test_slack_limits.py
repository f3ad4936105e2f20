"""Slack's Block Kit limits, checked on every message a real loopback Slack endpoint receives:
a 60-alert digest arrives whole, in ordered parts of at most 50 blocks; a part that fails is
retried alone; long or escape-heavy fields are cut with an ellipsis instead of costing a 400
(which is permanent: the alert would be lost)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.alert import render
from monitor.alert.message import Alert, Message
from monitor.pipeline.delivery import dispatch_due
from tests.alerts.conftest import Env
from tests.support.httpserver import LocalServer, Recorded, Reply

# Slack's documented limits (Block Kit reference: blocks, text objects; chat.postMessage)
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK_TEXT = 40_000

TOPIC = """
[[topics]]
name = "t1"
descriptions = ["x"]
channels = ["slack"]
"""


def slack_channel(server: LocalServer, **extra: str) -> str:
    lines = "\n".join(f'{k} = "{v}"' for k, v in extra.items())
    return f"""
    [alerts.slack]
    type = "slack"
    url = "{server.url("/slack")}"
    timeout = "2s"
    {lines}
    """


@pytest.fixture
def slack() -> Iterator[LocalServer]:
    with LocalServer() as server:
        server.route("/slack", Reply(status=200, body=b"ok"))
        yield server


def limit_problems(payload: dict[str, Any]) -> list[str]:
    """Every way ``payload`` breaks a documented Slack limit (empty when it fits)."""
    problems = []
    blocks = payload.get("blocks", [])
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks")
    if len(payload.get("text", "")) > MAX_FALLBACK_TEXT:
        problems.append(f"fallback text of {len(payload['text'])} characters")
    for number, block in enumerate(blocks):
        texts = [block["text"]["text"]] if "text" in block else []
        texts += [element["text"] for element in block.get("elements", [])]
        limit = MAX_HEADER_TEXT if block["type"] == "header" else MAX_SECTION_TEXT
        problems += [f"block {number}: {len(t)} characters" for t in texts if len(t) > limit]
        if len(block.get("elements", [])) > MAX_CONTEXT_ELEMENTS:
            problems.append(f"block {number}: {len(block['elements'])} elements")
    return problems


def payloads(requests: list[Recorded]) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in requests]


def item_numbers(payload: dict[str, Any]) -> list[int]:
    """The numbers of the "item NN" titles in one Slack message, in order."""
    text = " ".join(b["text"]["text"] for b in payload["blocks"] if b["type"] == "section")
    return [int(n) for n in re.findall(r"\|item (\d+)", text)]


def queue_digest(env: Env, count: int) -> None:
    """``count`` alerts queued for the 10:00 hourly digest; titles are long and escape-heavy."""
    env.clock.set(datetime(2026, 11, 2, 9, 10, tzinfo=UTC))
    for i in range(count):
        env.match(f"item {i:02d} " + "<&>" * 1500, passage="a passage & more " * 400)
    env.clock.set(datetime(2026, 11, 2, 10, 0, tzinfo=UTC))


def test_sixty_alert_digest_arrives_whole_in_parts_within_slacks_limits(
    make_env: Callable[..., Env], slack: LocalServer
) -> None:
    env = make_env(slack_channel(slack, mode="digest", digest_schedule="hourly"), TOPIC)
    queue_digest(env, 60)
    report = dispatch_due(env.runtime)
    received = payloads(slack.requests_to("/slack"))
    assert report.failed == 0
    assert len(received) == report.sent > 1
    for payload in received:
        assert limit_problems(payload) == []
    numbers = [n for payload in received for n in item_numbers(payload)]
    assert numbers == list(range(60))  # every alert, once, in order
    parts = len(received)
    for index, payload in enumerate(received, start=1):
        assert f"60 new articles, part {index} of {parts}" in payload["text"]
        assert f"part {index} of {parts}" in payload["blocks"][0]["text"]["text"]
    keys = [r.header("Idempotency-Key") for r in slack.requests_to("/slack")]
    assert len(set(keys)) == parts


def test_a_failed_part_is_retried_alone_and_parts_stay_in_order(
    make_env: Callable[..., Env], slack: LocalServer, db_url: str
) -> None:
    answers = [Reply(body=b"ok"), Reply(body=b"ok"), Reply(status=500, body=b"boom")]
    slack.route("/slack", lambda _r: answers.pop(0) if answers else Reply(body=b"ok"))
    env = make_env(
        slack_channel(slack, mode="digest", digest_schedule="hourly"), TOPIC, db_url=db_url
    )
    queue_digest(env, 60)
    first = dispatch_due(env.runtime)
    assert (first.sent, first.retried) == (2, 1)  # parts 1 and 2, then part 3 failed
    assert len(slack.requests_to("/slack")) == 3  # later parts wait behind part 3
    env.clock.advance(minutes=3)
    second = dispatch_due(env.runtime)
    assert second.failed == second.retried == 0
    requests = slack.requests_to("/slack")
    keys = [r.header("Idempotency-Key") for r in requests]
    assert keys[2] == keys[3]  # part 3 again, and only part 3
    assert len(set(keys)) == len(keys) - 1
    delivered = [requests[i] for i in range(len(requests)) if i != 2]  # drop the 500
    numbers = [n for payload in payloads(delivered) for n in item_numbers(payload)]
    assert numbers == list(range(60))
    assert {d.status for d in env.deliveries()} <= {"sent", "digested"}


def test_a_long_single_alert_is_cut_with_an_ellipsis_and_delivered(
    make_env: Callable[..., Env], slack: LocalServer
) -> None:
    env = make_env(slack_channel(slack), TOPIC)
    env.feed("Feed " + "&" * 5000)
    env.match("A" * 10_000, feed="Feed " + "&" * 5000, passage="p" * 10_000)
    assert dispatch_due(env.runtime).sent == 1
    [payload] = payloads(slack.requests_to("/slack"))
    assert limit_problems(payload) == []
    title = payload["blocks"][0]["text"]["text"]
    assert title.startswith("*<https://news.example/")
    assert title.endswith("\u2026>*")
    assert payload["blocks"][2]["text"]["text"].endswith("\u2026")


def test_a_digest_made_outside_the_pipeline_is_split_too() -> None:
    alerts = tuple(
        Alert(topic="t1", title=f"item {i:02d}", link=f"https://x.example/{i}", source="S", score=1)
        for i in range(25)
    )
    parts = render.slack_payloads(Message(kind="digest", topic="t1", alerts=alerts))
    assert len(parts) == 3
    assert all(limit_problems(p) == [] for p in parts)
    assert [n for p in parts for n in item_numbers(p)] == list(range(25))
    assert "25 new articles, part 3 of 3" in parts[2]["text"]


def test_slack_fit_never_splits_an_escaped_character() -> None:
    cut = render.slack_fit("a" + "&" * 10, 9)
    assert cut == "a&amp;\u2026"
    assert len(render.slack_fit("<" * 5000, 3000)) <= 3000
