"""Secrets inside URLs never reach a log line, the terminal or the database (issue 12, #5).

A webhook URL with ``user:password@`` and a Slack-style token path is sent to a real loopback
server that answers the way Express does (``404 Cannot POST <path>``, echoing the token); every
place the failure shows up is then read: the daemon's log line on stderr, the outbox row, `alerts
list`, `alerts test`, `show` and the API. `config show` / `config check` print the database URL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from monitor.api import create_app
from monitor.cli import app
from monitor.pipeline.delivery import dispatch_due
from monitor.redact import MASK, redact_text, redact_url
from monitor.store import db
from monitor.store.models import Delivery, Match
from tests.alerts.conftest import Env
from tests.support.httpserver import LocalServer, Recorded, Reply

HOOK_PASSWORD = "hunter2-hook-pass"
# made up, shaped like the last part of a Slack incoming-webhook URL
HOOK_TOKEN = "aB3dE5fG7hJ9kL1mN3pQ5rS7"
HOOK_PATH = f"/services/T0001/B0001/{HOOK_TOKEN}"
DB_PASSWORD = "pg-pass-C0ffee42"
SECRETS = (HOOK_PASSWORD, HOOK_TOKEN, DB_PASSWORD)


def assert_no_secret(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"{leaked} shown in: {text}"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://monitor:pw@db.example:5432/monitor",
            "postgresql+psycopg://monitor:***@db.example:5432/monitor",
        ),
        (
            f"https://hooks.slack.com{HOOK_PATH}",
            "https://hooks.slack.com/services/T0001/B0001/***",
        ),
        (
            "https://discord.com/api/webhooks/123456789012345678/Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg",
            "https://discord.com/api/webhooks/123456789012345678/***",
        ),
        (
            "https://chat.example/v1/spaces/AAA/messages?key=k1&token=t%3D&threadKey=x",
            "https://chat.example/v1/spaces/AAA/messages?key=***&token=***&threadKey=***",
        ),
        ("https://Aa1Bb2Cc3Dd4Ee5Ff6@git.example/x", "https://***@git.example/x"),
        ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/42", "tgram://***/42"),
        # nothing secret: shown as written
        ("sqlite:///var/lib/monitor/monitor.db", "sqlite:///var/lib/monitor/monitor.db"),
        (
            "https://news.example/2026/12/02/troops-sent-to-russia?utm_source=rss&page=2#top",
            "https://news.example/2026/12/02/troops-sent-to-russia?utm_source=rss&page=2#top",
        ),
        ("http://[::1]:8080/feed.xml", "http://[::1]:8080/feed.xml"),
    ],
)
def test_redact_url_masks_each_secret_part(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_masks_urls_pairs_and_known_secrets() -> None:
    text = (
        "ConnectError: [Errno 111] for url 'http://u:p4ss@127.0.0.1:9/x'. "
        "Also u2:pw2@host:5432, password=abc&x and "
        f"Cannot POST {HOOK_PATH}"
    )
    masked = redact_text(text, secrets=[f"http://u:p4ss@127.0.0.1:9{HOOK_PATH}"])
    assert masked == (
        "ConnectError: [Errno 111] for url 'http://u:***@127.0.0.1:9/x'. "
        "Also u2:***@host:5432, password=***&x and "
        "Cannot POST /services/T0001/B0001/***"
    )
    assert redact_text("feed_id=3 error=timeout after 20s") == "feed_id=3 error=timeout after 20s"
    assert MASK == "***"


def test_config_show_and_check_mask_the_database_password(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[database]
url = "postgresql+psycopg://monitor:{DB_PASSWORD}@127.0.0.1:5432/monitor"

[[feeds]]
url = "https://reader:{HOOK_PASSWORD}@private.example/feed.xml"

[alerts.hook]
type = "webhook"
url = "https://hooks.example{HOOK_PATH}"
""",
        encoding="utf-8",
    )
    runner = CliRunner()
    check = runner.invoke(app, ["--config", str(path), "config", "check"])
    assert check.exit_code == 0, check.output
    assert "database: postgresql+psycopg://monitor:***@127.0.0.1:5432/monitor" in check.output
    assert_no_secret(check.output)
    show = runner.invoke(app, ["--config", str(path), "config", "show"])
    assert show.exit_code == 0, show.output
    shown = json.loads(show.output)
    assert shown["database"]["url"] == "postgresql+psycopg://monitor:***@127.0.0.1:5432/monitor"
    assert shown["feeds"][0]["url"] == "https://reader:***@private.example/feed.xml"
    assert_no_secret(show.output)


@pytest.fixture
def express() -> Iterator[LocalServer]:
    """A receiver that answers 404 with Express's default body, which quotes the path."""

    def cannot_post(request: Recorded) -> Reply:
        return Reply(status=404, body=f"Cannot POST {request.path}".encode())

    with LocalServer() as server:
        server.route(HOOK_PATH, cannot_post)
        yield server


def hook_channel(server: LocalServer) -> str:
    url = f"http://hookuser:{HOOK_PASSWORD}@127.0.0.1:{server.port}{HOOK_PATH}"
    return f'[alerts.hook]\ntype = "webhook"\nurl = "{url}"\ntimeout = "3s"\n'


def cli(config: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return f"exit {result.exit_code}\n{result.output}"


def expected_error(server: LocalServer) -> str:
    return f"HTTP 404 from 127.0.0.1:{server.port}: Cannot POST /services/T0001/B0001/***"


def test_the_log_line_and_the_outbox_row_of_a_failing_webhook_hide_its_secrets(
    make_env: Callable[..., Env], express: LocalServer, tmp_path: Path
) -> None:
    env = make_env(hook_channel(express))
    env.match("Kim meets Putin")
    # the log line as the daemon's dispatcher writes it to stderr
    config = str(tmp_path / "config.toml")
    dispatch = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", config, "alerts", "dispatch"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert dispatch.returncode == 0, dispatch.stderr
    assert len(express.requests_to(HOOK_PATH)) == 1
    [line] = [ln for ln in dispatch.stderr.splitlines() if "FAILED FOR GOOD" in ln]
    assert expected_error(express) in line
    assert_no_secret(dispatch.stderr)
    with db.session_scope(env.runtime.sessions) as session:
        [row] = session.scalars(select(Delivery)).all()
        assert (row.status, row.last_error) == ("failed", expected_error(express))


def test_alerts_test_hides_the_url_secrets(
    make_env: Callable[..., Env], express: LocalServer, tmp_path: Path
) -> None:
    make_env(hook_channel(express))
    tested = cli(tmp_path / "config.toml", "alerts", "test", "--channel", "hook")
    assert tested.startswith("exit 1\n")
    assert expected_error(express) in tested
    assert_no_secret(tested)


def test_alerts_list_show_and_the_api_hide_the_url_secrets(
    make_env: Callable[..., Env], express: LocalServer, tmp_path: Path
) -> None:
    env = make_env(hook_channel(express))
    match_id = env.match("Kim meets Putin")
    dispatch_due(env.runtime)
    with db.session_scope(env.runtime.sessions) as session:
        article_id = session.get(Match, match_id).article_id
    config = tmp_path / "config.toml"
    listed = cli(config, "alerts", "list", "--format", "json")
    assert json.loads(listed.split("\n", 1)[1])[0]["last_error"] == expected_error(express)
    table = cli(config, "alerts", "list")
    assert "HTTP 404 from 127.0.0.1" in table
    shown = cli(config, "show", f"m{match_id}")
    assert expected_error(express) in shown
    shown_json = cli(config, "show", f"m{match_id}", "--format", "json")
    api = TestClient(create_app(env.runtime, token=""), base_url="http://localhost")
    detail = api.get(f"/api/articles/{article_id}").text
    assert expected_error(express) in detail
    for output in (listed, table, shown, shown_json, detail):
        assert_no_secret(output)


def test_errors_stored_before_redaction_are_masked_when_shown(
    make_env: Callable[..., Env], express: LocalServer, tmp_path: Path
) -> None:
    """A row written by an older version still quotes the URL: masked on the way out."""
    env = make_env(hook_channel(express))
    match_id = env.match("Kim meets Putin")
    old_error = (
        f"HTTP 500 from hookuser:{HOOK_PASSWORD}@127.0.0.1:9: see "
        f"http://hookuser:{HOOK_PASSWORD}@127.0.0.1:9{HOOK_PATH}"
    )
    with db.session_scope(env.runtime.sessions) as session:
        row = session.scalars(select(Delivery)).one()
        row.last_error = old_error
    config = tmp_path / "config.toml"
    outputs = [
        cli(config, "alerts", "list"),
        cli(config, "alerts", "list", "--format", "json"),
        cli(config, "show", f"m{match_id}"),
    ]
    for output in outputs:
        assert "hookuser:***@127.0.0.1:9" in output
        assert_no_secret(output)
