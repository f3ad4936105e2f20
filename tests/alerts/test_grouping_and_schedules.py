"""Story grouping, digests, budgets, quiet hours and feed-health notices, on a controllable
clock; the grouping and digest tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.pipeline.delivery import dispatch_due
from monitor.store import db
from monitor.store.models import Feed, Story
from tests.alerts.conftest import Env
from tests.support.httpserver import LocalServer, Reply


@pytest.fixture
def receiver() -> Iterator[LocalServer]:
    with LocalServer() as server:
        server.route("/hook", Reply(status=200, body=b"ok"))
        yield server


def channels(server: LocalServer, **extra: str) -> str:
    lines = "\n".join(f'{k} = "{v}"' for k, v in extra.items())
    return f"""
    [alerts.hook]
    type = "webhook"
    url = "{server.url("/hook")}"
    timeout = "2s"
    {lines}
    """


def topic(**extra: object) -> str:
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in extra.items())
    return f"""
    [[topics]]
    name = "t1"
    descriptions = ["x"]
    channels = ["hook"]
    {lines}
    """


def bodies(server: LocalServer) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in server.requests_to("/hook")]


def unit(*head: float) -> list[float]:
    vec = [*head, *([0.0] * (8 - len(head)))]
    norm = sum(v * v for v in vec) ** 0.5
    return [v / norm for v in vec]


def test_same_canonical_link_is_one_story_and_one_alert(
    make_env: Callable[..., Env], receiver: LocalServer, db_url: str
) -> None:
    env = make_env(channels(receiver), topic(), db_url=db_url)
    first = env.match("Kim meets Putin", feed="Wire A", canonical="https://x.example/summit")
    env.clock.advance(hours=1)
    second = env.match("Kim and Putin meet", feed="Wire B", canonical="https://x.example/summit")
    m1, m2 = env.matches()
    assert (m1.id, m2.id) == (first, second)
    assert m1.story_id == m2.story_id
    assert m1.alerted
    assert not m2.alerted
    assert [d.match_id for d in env.deliveries()] == [first]
    with db.session_scope(env.runtime.sessions) as session:
        story = session.get(Story, m1.story_id)
        assert story is not None
        assert story.article_count == 2
    assert dispatch_due(env.runtime).sent == 1


def test_similar_embeddings_within_the_window_form_a_story(
    make_env: Callable[..., Env], receiver: LocalServer
) -> None:
    env = make_env(channels(receiver), topic())
    env.match("summit", vector=unit(1, 0.1))
    env.match("summit again", vector=unit(1, 0.2))  # cosine 0.995: same story
    env.match("other story", vector=unit(0.5, 1))  # cosine ~0.5: new story
    env.clock.advance(hours=49)  # beyond story_window (48h): a new story even if identical
    env.match("summit, two days later", vector=unit(1, 0.1))
    matches = env.matches()
    assert matches[0].story_id == matches[1].story_id
    assert len({m.story_id for m in matches}) == 3
    assert [m.alerted for m in matches] == [True, False, True, True]
    assert len(env.deliveries()) == 3


def test_realert_on_story_update_says_who_else_reported_it(
    make_env: Callable[..., Env], receiver: LocalServer
) -> None:
    env = make_env(channels(receiver), topic(realert_on_story_update=True))
    env.match("first", feed="Wire A", canonical="https://x.example/s")
    env.match("second", feed="Wire B", canonical="https://x.example/s")
    assert dispatch_due(env.runtime).sent == 2
    update = bodies(receiver)[1]["alerts"][0]  # type: ignore[index]
    assert update["story_update"] is True
    assert update["also_reported_by"] == ["Wire A"]


def test_hourly_digest_collects_alerts_until_the_top_of_the_hour(
    make_env: Callable[..., Env], receiver: LocalServer, db_url: str
) -> None:
    env = make_env(
        channels(receiver, mode="digest", digest_schedule="hourly"), topic(), db_url=db_url
    )
    env.clock.set(datetime(2026, 11, 2, 9, 10, tzinfo=UTC))
    for i in range(3):
        env.match(f"item {i}", feed=f"Wire {i}")
    env.clock.set(datetime(2026, 11, 2, 9, 59, tzinfo=UTC))
    assert dispatch_due(env.runtime).sent == 0
    env.clock.set(datetime(2026, 11, 2, 10, 0, tzinfo=UTC))
    report = dispatch_due(env.runtime)
    assert (report.digests, report.sent) == (1, 1)
    [digest] = bodies(receiver)
    assert digest["kind"] == "digest"
    assert digest["subject"] == "[t1] 3 new articles"
    assert [a["title"] for a in digest["alerts"]] == ["item 0", "item 1", "item 2"]  # type: ignore[attr-defined]
    env.clock.set(datetime(2026, 11, 2, 10, 5, tzinfo=UTC))
    env.match("late item")
    env.clock.set(datetime(2026, 11, 2, 10, 59, tzinfo=UTC))
    assert dispatch_due(env.runtime).sent == 0  # waits for the 11:00 digest
    env.clock.set(datetime(2026, 11, 2, 11, 0, tzinfo=UTC))
    assert dispatch_due(env.runtime).sent == 1
    assert [d["alerts"][0]["title"] for d in bodies(receiver)][1] == "late item"  # type: ignore[index]


def test_daily_digest_runs_at_local_time(
    make_env: Callable[..., Env], receiver: LocalServer
) -> None:
    env = make_env(
        channels(receiver, mode="digest", digest_schedule="daily 07:00", timezone="Asia/Jakarta"),
        topic(),
    )
    env.clock.set(datetime(2026, 11, 2, 10, 0, tzinfo=UTC))  # 17:00 in Jakarta
    env.match("evening news", canonical="https://x.example/a", feed="Wire A")
    env.clock.set(datetime(2026, 11, 2, 12, 0, tzinfo=UTC))
    env.match("same story elsewhere", canonical="https://x.example/a", feed="Wire B")
    env.clock.set(datetime(2026, 11, 2, 23, 59, tzinfo=UTC))  # 06:59 in Jakarta
    assert dispatch_due(env.runtime).sent == 0
    env.clock.set(datetime(2026, 11, 3, 0, 0, tzinfo=UTC))  # 07:00 in Jakarta
    assert dispatch_due(env.runtime).sent == 1
    [digest] = bodies(receiver)
    [alert] = digest["alerts"]  # type: ignore[misc]
    assert alert["title"] == "evening news"
    assert alert["also_reported_by"] == ["Wire B"]


def test_budget_sends_the_rest_to_the_next_digest(
    make_env: Callable[..., Env], receiver: LocalServer
) -> None:
    env = make_env(channels(receiver), topic(alert_budget_per_hour=2))
    env.clock.set(datetime(2026, 11, 2, 9, 20, tzinfo=UTC))
    for i in range(5):
        env.match(f"busy {i}")
    assert [d.status for d in env.deliveries()] == ["pending"] * 2 + ["queued_digest"] * 3
    assert dispatch_due(env.runtime).sent == 2
    env.clock.set(datetime(2026, 11, 2, 10, 0, tzinfo=UTC))
    assert dispatch_due(env.runtime).sent == 1
    last = bodies(receiver)[-1]
    assert last["kind"] == "digest"
    assert len(last["alerts"]) == 3
    env.clock.set(datetime(2026, 11, 2, 10, 25, tzinfo=UTC))  # a new hour of budget
    env.match("fresh")
    assert env.deliveries()[-1].status == "pending"


def test_quiet_hours_hold_delivery_not_matching(
    make_env: Callable[..., Env], receiver: LocalServer
) -> None:
    env = make_env(channels(receiver, quiet_hours="22:00-07:00", timezone="UTC"), topic())
    env.clock.set(datetime(2026, 11, 2, 23, 0, tzinfo=UTC))
    env.match("night news")
    assert len(env.deliveries()) == 1  # queued while quiet
    assert dispatch_due(env.runtime).sent == 0
    env.clock.set(datetime(2026, 11, 3, 6, 59, tzinfo=UTC))
    assert dispatch_due(env.runtime).sent == 0
    env.clock.set(datetime(2026, 11, 3, 7, 0, tzinfo=UTC))
    assert dispatch_due(env.runtime).sent == 1


def test_feed_health_alerts_once_when_failing_and_once_on_recovery(
    make_env: Callable[..., Env], receiver: LocalServer
) -> None:
    env = make_env(
        channels(receiver),
        topic(),
        delivery_extra="""
    health_channel = "hook"
    health_after = "6h"
    """,
    )
    feed_id = env.feed("Flaky")
    with db.session_scope(env.runtime.sessions) as session:
        feed = session.get(Feed, feed_id)
        assert feed is not None
        feed.failing_since, feed.last_error = env.clock() - timedelta(hours=5), "HTTP 503"
    assert dispatch_due(env.runtime).health == 0  # 5 h < 6 h
    env.clock.advance(hours=2)
    assert dispatch_due(env.runtime).sent == 1
    env.clock.advance(hours=2)
    assert dispatch_due(env.runtime).sent == 0  # once, not every tick
    with db.session_scope(env.runtime.sessions) as session:
        feed = session.get(Feed, feed_id)
        assert feed is not None
        # what polling does on success (it also clears health_alerted_at)
        feed.failing_since, feed.health_alerted_at = None, None
    assert dispatch_due(env.runtime).sent == 1
    assert dispatch_due(env.runtime).sent == 0
    notices = [b["notice"] for b in bodies(receiver)]
    assert "Feed failing for 7.0 h: Flaky" in notices[0]
    assert "HTTP 503" in notices[0]
    assert notices[1].startswith("Feed recovered: Flaky")  # type: ignore[union-attr]
    with db.session_scope(env.runtime.sessions) as session:  # fails again: a new period
        feed = session.get(Feed, feed_id)
        assert feed is not None
        feed.failing_since = env.clock()
    env.clock.advance(hours=6)
    assert dispatch_due(env.runtime).sent == 1
    assert dispatch_due(env.runtime).sent == 0
    assert "Feed failing for 6.0 h: Flaky" in bodies(receiver)[2]["notice"]  # type: ignore[operator]
