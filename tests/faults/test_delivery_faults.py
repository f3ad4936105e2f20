"""Alert channels that fail for a while: every alert is still delivered, exactly once, and the
daemon never stops. The alerts are put in the outbox directly (as matching would), so what must
be delivered is known exactly and counted at the receiver."""

from __future__ import annotations

import email
import socket
from collections.abc import Callable
from pathlib import Path

from aiosmtpd.controller import Controller

from monitor.store.models import DeliveryAttempt
from tests.faults.conftest import StartDaemon, seed_outbox
from tests.support.daemonproc import Db, config_text, wait_until
from tests.support.faults import AlertReceiver
from tests.support.httpserver import LocalServer, Reply

WriteConfig = Callable[..., Path]
LINKS = [f"http://news.example/seeded/{n}" for n in range(5)]


def test_slack_answering_429_then_500_for_a_while(
    server: LocalServer, start_daemon: StartDaemon, write_config: WriteConfig, sqlite_url: str
) -> None:
    failures = [Reply(status=429, headers={"Retry-After": "1"}, body=b"rate_limited")] * 3 + [
        Reply(status=500, body=b"oops")
    ] * 3
    slack = AlertReceiver(server, failures=failures)
    config = write_config(config_text(sqlite_url, [], slack_url=slack.url))
    seed_outbox(config, LINKS)
    daemon = start_daemon(config)
    store = Db(sqlite_url)
    wait_until(lambda: store.sent() == len(LINKS), 60, "every seeded alert sent", [daemon])
    daemon.assert_alive()
    assert slack.delivered(LINKS) == dict.fromkeys(LINKS, 1)
    assert len(server.requests_to("/slack")) > len(LINKS), "the failures were not exercised"
    assert daemon.stop() == 0
    assert slack.delivered(LINKS) == dict.fromkeys(LINKS, 1)  # nothing resent on the way out
    store.close()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(envelope.content)  # type: ignore[attr-defined]
        return "250 OK"


def _text_of(raw: bytes) -> str:
    """Every decoded text part of a mail (bodies are often quoted-printable or base64)."""
    message = email.message_from_bytes(raw)
    parts = [p.get_payload(decode=True) for p in message.walk() if not p.is_multipart()]
    return "\n".join(p.decode("utf-8", "replace") for p in parts if isinstance(p, bytes))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_smtp_down_then_up(
    start_daemon: StartDaemon, write_config: WriteConfig, sqlite_url: str
) -> None:
    port = _free_port()
    email = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "plain",
        "recipients": ["desk@example.org"],
        "sender": "monitor@example.org",
    }
    config = write_config(config_text(sqlite_url, [], email=email))
    seed_outbox(config, LINKS)
    daemon = start_daemon(config)
    store = Db(sqlite_url)
    # nobody listens on the port: every attempt fails and is recorded, none is lost
    wait_until(
        lambda: store.count(DeliveryAttempt, DeliveryAttempt.ok.is_(False)) >= 3,
        60,
        "three failed attempts while SMTP is down",
        [daemon],
    )
    assert store.sent() == 0
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        wait_until(
            lambda: store.sent() == len(LINKS), 60, "every alert sent once SMTP is up", [daemon]
        )
        daemon.assert_alive()
        bodies = [_text_of(m) for m in inbox.messages]
        assert {link: sum(link in b for b in bodies) for link in LINKS} == dict.fromkeys(LINKS, 1)
        assert daemon.stop() == 0
    finally:
        controller.stop()
    store.close()
