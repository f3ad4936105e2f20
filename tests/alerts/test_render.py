"""Rendering and pure scheduling: escaping of hostile feed content, subjects, backoff, slots."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from monitor.alert import channel_types, render
from monitor.alert.message import Alert, Message
from monitor.alert.schedule import digest_slot, quiet_until
from monitor.config import ChannelConfig
from monitor.pipeline.delivery import retry_delay

HOSTILE = Alert(
    topic="t1",
    title='<script>alert("x")</script> & <b>bold</b>',
    link="javascript:alert(1)",
    source="Evil <Feed>",
    score=0.75,
    published_at=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    passage="<img src=x onerror=alert(1)>",
    also_reported_by=("A & B",),
)


def test_every_channel_type_is_registered() -> None:
    assert set(channel_types()) >= {"console", "email", "slack", "webhook"}


def test_html_escapes_hostile_content_and_drops_script_links() -> None:
    html = render.email_html(Message(kind="alert", topic="t1", alerts=(HOSTILE,)))
    assert "<script>" not in html
    assert "<img" not in html
    assert "<b>bold" not in html
    assert "&lt;script&gt;" in html
    assert "&lt;img src=x" in html
    assert 'href="#"' in html
    assert "javascript:" not in html


def test_subject_is_topic_and_title_on_one_line() -> None:
    alert = Alert(
        topic="t1", title="Line one\r\nBcc: victim@example.org", link="", source="", score=0.5
    )
    subject = render.subject(Message(kind="alert", topic="t1", alerts=(alert,)))
    assert subject == "[t1] Line one Bcc: victim@example.org"


def test_slack_text_is_escaped_and_link_is_not_clickable_script() -> None:
    payload = render.slack_payload(Message(kind="alert", topic="t1", alerts=(HOSTILE,)))
    text = json.dumps(payload)
    assert "<script>" not in text
    assert "<img" not in text
    assert "<Feed>" not in text
    assert "&lt;script&gt;" in text
    assert "A &amp; B" in text
    assert "javascript:" not in text
    good = Alert(topic="t1", title="a|b > c", link="https://x.example/a|b", source="S", score=1)
    first = render.slack_payload(Message(kind="alert", topic="t1", alerts=(good,)))["blocks"][0]
    assert first["text"]["text"] == "*<https://x.example/a%7Cb|a|b &gt; c>*"


@pytest.mark.parametrize(("attempts", "low", "high"), [(1, 5, 10), (2, 10, 20), (10, 60, 120)])
def test_retry_delay_doubles_with_jitter_up_to_the_cap(
    attempts: int, low: float, high: float
) -> None:
    delays = [retry_delay(attempts, 10, 120) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 1  # jittered


def test_retry_after_is_never_undercut() -> None:
    assert retry_delay(1, 10, 120, retry_after=900) == 900


def test_digest_slots_in_the_channel_time_zone() -> None:
    now = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)
    assert digest_slot(now, "hourly", "UTC") == datetime(2026, 11, 2, 23, 0, tzinfo=UTC)
    # India is UTC+05:30: its hours start at :30 UTC
    assert digest_slot(now, "hourly", "Asia/Kolkata") == now
    # 07:00 in Jakarta (UTC+7) is 00:00 UTC; at 06:30 local the latest slot is yesterday's
    assert digest_slot(now, "daily 07:00", "Asia/Jakarta") == datetime(
        2026, 11, 2, 0, 0, tzinfo=UTC
    )


def test_quiet_hours_wrap_midnight() -> None:
    late = datetime(2026, 11, 2, 23, 0, tzinfo=UTC)
    assert quiet_until(late, "22:00-07:00", "UTC") == datetime(2026, 11, 3, 7, 0, tzinfo=UTC)
    early = datetime(2026, 11, 3, 6, 59, tzinfo=UTC)
    assert quiet_until(early, "22:00-07:00", "UTC") == datetime(2026, 11, 3, 7, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 11, 3, 7, 0, tzinfo=UTC), "22:00-07:00", "UTC") is None
    assert quiet_until(late, "", "UTC") is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("digest_schedule", "weekly"), ("quiet_hours", "late"), ("timezone", "Mars/Base")],
)
def test_bad_schedule_settings_are_rejected_at_load(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        ChannelConfig(**{field: value})


def test_console_channel_prints_subject_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.alert import make_channel

    alert = Alert(
        topic="t1",
        title="Kim meets Putin",
        link="https://x.example/a",
        source="Wire",
        score=0.8,
        passage="the passage",
    )
    channel = make_channel("console", ChannelConfig(type="console"))
    channel.send(Message(kind="alert", topic="t1", alerts=(alert,)), "match-1-console")
    out = capsys.readouterr().out
    assert out.startswith("=== [t1] Kim meets Putin\n")
    assert "https://x.example/a" in out
    assert "Closest seed passage: the passage" in out
