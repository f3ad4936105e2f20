"""Email through a real SMTP server (aiosmtpd): headers, both parts, escaping; SMTP down for a
while then up: every alert arrives exactly once."""

from __future__ import annotations

from collections.abc import Callable

from monitor.alert.email import message_id
from monitor.pipeline.delivery import dispatch_due
from tests.alerts.conftest import Env, SmtpServer


def email_channel(port: int) -> str:
    return f"""
    [alerts.mail]
    type = "email"
    smtp_host = "127.0.0.1"
    smtp_port = {port}
    smtp_security = "plain"
    sender = "monitor@example.org"
    recipients = ["desk@example.org"]
    timeout = "3s"
    """


TOPICS = """
[[topics]]
name = "t1"
descriptions = ["x"]
channels = ["mail"]

[[topics]]
name = "t2"
descriptions = ["y"]
channels = ["mail"]
recipients = ["analyst@example.org", "boss@example.org"]
"""


def test_email_has_headers_both_parts_and_escapes_hostile_titles(
    make_env: Callable[..., Env], smtp_server: SmtpServer
) -> None:
    env = make_env(email_channel(smtp_server.port), TOPICS)
    match_id = env.match(
        '<script>alert("pwned")</script> Kim & Putin meet',
        link="https://news.example/kim?a=1&b=2",
        passage="arms <deal>",
    )
    assert dispatch_due(env.runtime).sent == 1
    [mail] = smtp_server.handler.messages
    assert mail["Subject"] == '[t1] <script>alert("pwned")</script> Kim & Putin meet'
    assert mail["From"] == "monitor@example.org"
    assert mail["To"] == "desk@example.org"
    assert mail["Message-ID"] == message_id(f"match-{match_id}-mail")
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert '<script>alert("pwned")</script> Kim & Putin meet' in text
    assert "https://news.example/kim?a=1&b=2" in text
    assert "Topic: t1" in text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; Kim &amp; Putin meet" in html
    assert 'href="https://news.example/kim?a=1&amp;b=2"' in html
    assert "arms &lt;deal&gt;" in html


def test_per_topic_recipients_override_the_channel(
    make_env: Callable[..., Env], smtp_server: SmtpServer
) -> None:
    env = make_env(email_channel(smtp_server.port), TOPICS)
    env.match("for the default desk", topic="t1")
    env.match("for the analysts", topic="t2")
    assert dispatch_due(env.runtime).sent == 2
    assert [rcpts for _, rcpts in smtp_server.handler.envelopes] == [
        ["desk@example.org"],
        ["analyst@example.org", "boss@example.org"],
    ]
    assert smtp_server.handler.messages[1]["Subject"] == "[t2] for the analysts"


def test_smtp_down_for_a_while_then_up_every_alert_arrives_once(
    make_env: Callable[..., Env], smtp_server: SmtpServer
) -> None:
    env = make_env(email_channel(smtp_server.port), TOPICS)
    smtp_server.stop()
    ids = [env.match(f"alert {i}") for i in range(4)]
    report = dispatch_due(env.runtime)
    assert report.retried == 1
    assert report.sent == 0
    assert "TCP: connection refused" in env.deliveries()[0].last_error
    env.clock.advance(minutes=3)
    assert dispatch_due(env.runtime).retried == 1  # still down
    smtp_server.start()
    assert dispatch_due(env.runtime).sent == 0  # backoff: not due yet
    env.clock.advance(minutes=3)
    assert dispatch_due(env.runtime).sent == 4
    env.clock.advance(minutes=30)
    assert dispatch_due(env.runtime).sent == 0
    got = [m["Message-ID"] for m in smtp_server.handler.messages]
    assert got == [message_id(f"match-{i}-mail") for i in ids]  # once each, in order
