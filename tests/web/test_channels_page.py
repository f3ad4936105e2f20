"""/channels: the alert channels with the topics that use them and their outbox figures, never
a secret (variables by name only); the admin enables or disables a channel in config.toml and
sends a test message through the real channel code to a real local endpoint; a reader reads
and gets 403 on every action."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator

import pytest

from monitor.config import load_config
from monitor.domain import DeliveryStatus
from monitor.store import db
from monitor.store.models import Delivery
from tests.support.httpserver import LocalServer, Reply
from tests.web.conftest import ADMIN, READER

HOOK_TOKEN = "T0KENinPATHabcdef1234567890"
HOOK_SECRET = "hmac-key-that-must-stay-hidden"
SMTP_PASSWORD = "literal-smtp-pass-never-shown"
CHANNELS = """
# the team's webhook; the URL lives in the environment
[alerts.hook]
type = "webhook"
url = "${{TEST_HOOK_URL}}"
secret = "${{TEST_HOOK_SECRET}}"

[alerts.mail]
type = "email"
enabled = false
smtp_host = "127.0.0.1"
smtp_port = 2525
smtp_password = "{password}"
recipients = ["ops@example.org"]
"""


@pytest.fixture
def hook_server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        srv.route(f"/hook/{HOOK_TOKEN}", Reply(status=204))
        yield srv


@pytest.fixture
def channels(env, hook_server, monkeypatch) -> str:
    """The test config with a webhook (URL and key from variables) and an email channel (a
    literal password) added, the sanctions topic alerting the webhook, and two outbox rows."""
    monkeypatch.setenv("TEST_HOOK_URL", hook_server.url(f"/hook/{HOOK_TOKEN}"))
    monkeypatch.setenv("TEST_HOOK_SECRET", HOOK_SECRET)
    text = env.config_path.read_text(encoding="utf-8").replace(
        'name = "sanctions"\n', 'name = "sanctions"\nchannels = ["console", "hook"]\n'
    ) + CHANNELS.format(password=SMTP_PASSWORD)
    env.config_path.write_text(text, encoding="utf-8")
    env.runtime.config = load_config(env.config_path)
    first = env.seeded.matches[0]
    with db.session_scope(env.runtime.sessions) as s:
        s.add(Delivery(match_id=first, channel="hook", idempotency_key="k1", status="sent"))
        s.add(
            Delivery(
                match_id=first,
                channel="hook",
                idempotency_key="k2",
                status=DeliveryStatus.FAILED,
                last_error=f"HTTP 500 from {hook_server.url(f'/hook/{HOOK_TOKEN}')}",
            )
        )
    return text


def _no_secret_in(text: str) -> None:
    for secret in (HOOK_TOKEN, HOOK_SECRET, SMTP_PASSWORD):
        assert secret not in text
        assert secret not in html.unescape(text)


def test_the_page_lists_channels_without_a_secret(make_client, channels, hook_server) -> None:
    for token in (ADMIN, READER):
        answer = make_client(token).get("/channels")
        assert answer.status_code == 200
        page = html.unescape(answer.text)
        _no_secret_in(answer.text)
        assert "${TEST_HOOK_URL}" in page  # the variable, by name
        assert "${TEST_HOOK_SECRET}" in page
        assert "<code>smtp_password</code>: set (written in config.toml)" in page
        assert "<code>url</code>: set, from <code>${TEST_HOOK_URL}</code>" in page
        hook = page.split('id="channel-hook"', 1)[1].split("</tr>", 1)[0]
        assert "webhook" in hook
        assert "enabled" in hook
        assert "sanctions" in hook  # the topic that uses it
        assert "alliance" not in hook
        assert "1 sent" in hook
        assert "1 failed" in hook
        assert "failed ·" in hook  # the newest delivery's status
        mail = page.split('id="channel-mail"', 1)[1].split("</tr>", 1)[0]
        assert "disabled" in mail
        assert "127.0.0.1:2525" in mail


def test_the_admin_disables_and_enables_a_channel_in_config_toml(
    open_client, env, channels
) -> None:
    answer = open_client.post("/channels/hook/disable")
    assert answer.status_code == 200
    assert 'Channel "hook" disabled' in html.unescape(answer.text)
    text = env.config_path.read_text(encoding="utf-8")
    assert text == channels.replace(
        'secret = "${TEST_HOOK_SECRET}"\n', 'secret = "${TEST_HOOK_SECRET}"\nenabled = false\n'
    )
    assert "# the team's webhook; the URL lives in the environment" in text
    assert env.runtime.config.alerts["hook"].enabled is False  # in use at once
    open_client.post("/channels/hook/enable")
    assert load_config(env.config_path).alerts["hook"].enabled is True
    assert "# the team's webhook" in env.config_path.read_text(encoding="utf-8")


def test_enabling_a_channel_whose_variable_is_unset_is_refused(
    open_client, env, channels, monkeypatch
) -> None:
    open_client.post("/channels/hook/disable")
    before = env.config_path.read_text(encoding="utf-8")
    monkeypatch.delenv("TEST_HOOK_SECRET")
    answer = open_client.post("/channels/hook/enable")
    assert answer.status_code == 400
    assert "TEST_HOOK_SECRET is not set" in answer.text
    assert env.config_path.read_text(encoding="utf-8") == before


def test_a_test_message_goes_through_the_real_channel(open_client, channels, hook_server) -> None:
    answer = open_client.post("/channels/hook/test")
    assert answer.status_code == 200, answer.text
    assert 'Test message sent through "hook"' in html.unescape(answer.text)
    [request] = hook_server.requests_to(f"/hook/{HOOK_TOKEN}")
    assert request.method == "POST"
    assert "Test alert from monitor" in json.dumps(json.loads(request.body))
    assert (request.header("X-Monitor-Signature") or "").startswith("sha256=")  # signed
    hook_server.route(f"/hook/{HOOK_TOKEN}", Reply(status=500, body=b"down"))
    failed = open_client.post("/channels/hook/test")
    assert failed.status_code == 502
    assert 'Test message through "hook" failed' in html.unescape(failed.text)
    _no_secret_in(failed.text)


def test_the_reader_sees_no_action_and_gets_403(make_client, env, channels, hook_server) -> None:
    reader = make_client(READER)
    page = reader.get("/channels").text
    assert "/channels/hook/test" not in page
    assert "/channels/hook/disable" not in page
    for action in ("disable", "enable", "test"):
        answer = reader.post(f"/channels/hook/{action}")
        assert answer.status_code == 403
        assert "read-only token" in answer.text
    assert hook_server.requests_to(f"/hook/{HOOK_TOKEN}") == []
    assert env.config_path.read_text(encoding="utf-8") == channels
    assert make_client(ADMIN).post("/channels/nowhere/test").status_code == 404
