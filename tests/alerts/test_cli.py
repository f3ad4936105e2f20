"""`monitor alerts test` names exactly what failed (DNS, TCP, TLS, auth, HTTP status + body);
`monitor alerts list` shows the outbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from typer.testing import CliRunner

from monitor.cli import app
from monitor.pipeline.delivery import dispatch_due
from tests.alerts.conftest import Env, RecordingHandler, SmtpServer, free_port
from tests.support.httpserver import LocalServer, Reply


@pytest.fixture
def receiver() -> Iterator[LocalServer]:
    with LocalServer() as server:
        server.route("/ok", Reply(status=200, body=b"ok"))
        server.route("/broken", Reply(status=500, body=b"upstream exploded: db down"))
        yield server


def write(tmp_path: Path, channels: str) -> Path:
    path = tmp_path / "cli.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/cli.db"\n{channels}', encoding="utf-8"
    )
    return path


def run_test(config: Path, channel: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["--config", str(config), "alerts", "test", "--channel", channel]
    )
    return result.exit_code, result.output


def hook(name: str, url: str, kind: str = "webhook") -> str:
    return f'\n[alerts.{name}]\ntype = "{kind}"\nurl = "{url}"\ntimeout = "3s"\n'


def mail(name: str, port: int, security: str, user: str = "") -> str:
    auth = f'smtp_username = "{user}"\nsmtp_password = "wrong"\n' if user else ""
    return (
        f'\n[alerts.{name}]\ntype = "email"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
        f'smtp_security = "{security}"\nrecipients = ["a@example.org"]\ntimeout = "3s"\n'
        f"{auth}"
    )


def test_alerts_test_reports_success_and_each_kind_of_failure(
    tmp_path: Path, receiver: LocalServer, smtp_server: SmtpServer
) -> None:
    closed = free_port()
    config = write(
        tmp_path,
        "".join(
            [
                hook("good", receiver.url("/ok"), "slack"),
                hook("http500", receiver.url("/broken")),
                hook("refused", f"http://127.0.0.1:{closed}/hook"),
                hook("dns", "http://no-such-host.invalid/hook"),
                hook("tls", f"https://127.0.0.1:{receiver.port}/ok"),
                mail("smtps", smtp_server.port, "tls"),
                mail("nostarttls", smtp_server.port, "starttls"),
                mail("plainmail", smtp_server.port, "plain"),
            ]
        ),
    )
    assert run_test(config, "good") == (0, 'test alert sent through channel "good"\n')
    assert len(receiver.requests_to("/ok")) == 1
    code, out = run_test(config, "http500")
    assert code == 1
    assert f"HTTP 500 from 127.0.0.1:{receiver.port}: upstream exploded: db down" in out
    code, out = run_test(config, "refused")
    assert code == 1
    assert f"TCP: connection refused by 127.0.0.1:{closed}" in out
    assert "DNS: cannot resolve no-such-host.invalid" in run_test(config, "dns")[1]
    assert "TLS: handshake with 127.0.0.1" in run_test(config, "tls")[1]
    assert "TLS: handshake with 127.0.0.1" in run_test(config, "smtps")[1]
    assert "does not offer STARTTLS" in run_test(config, "nostarttls")[1]
    assert run_test(config, "plainmail")[0] == 0
    [sent] = smtp_server.handler.messages
    assert sent["Subject"] == "[test] Test alert from monitor <&> (you can ignore it)"


def test_alerts_test_reports_rejected_smtp_login(tmp_path: Path) -> None:
    def reject(*_args: object) -> AuthResult:
        return AuthResult(success=False, handled=False)

    port = free_port()
    controller = Controller(
        RecordingHandler(),
        hostname="127.0.0.1",
        port=port,
        authenticator=reject,
        auth_require_tls=False,
    )
    controller.start()
    try:
        config = write(tmp_path, mail("mail", port, "plain", user="desk"))
        code, out = run_test(config, "mail")
    finally:
        controller.stop()
    assert code == 1
    assert f"auth: 127.0.0.1:{port} refused the login: 535" in out
    assert "wrong" not in out  # the password is never printed


def test_unknown_channel_is_a_one_line_user_error(tmp_path: Path) -> None:
    config = write(tmp_path, "")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "--config",
            str(config),
            "alerts",
            "test",
            "--channel",
            "nope",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == ('error: no channel "nope" under [alerts] (defined: console)')


def test_alerts_list_shows_the_outbox_and_filters_failed(
    make_env: Callable[..., Env], receiver: LocalServer, tmp_path: Path
) -> None:
    env = make_env(
        hook("hook", receiver.url("/ok")) + hook("bad", receiver.url("/gone")),
        """
    [[topics]]
    name = "t1"
    descriptions = ["x"]
    channels = ["hook", "bad"]
    """,
    )
    env.match("listed")
    dispatch_due(env.runtime)  # /gone answers 404: permanent failure
    config = str(tmp_path / "config.toml")
    result = CliRunner().invoke(
        app, ["--config", config, "alerts", "list", "--status", "failed", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["channel"] == "bad"
    assert row["status"] == "failed"
    assert row["last_error"].startswith("HTTP 404")
    table = CliRunner().invoke(app, ["--config", config, "alerts", "list"]).output
    assert "CHANNEL" in table
    assert "sent" in table
    assert "failed" in table
