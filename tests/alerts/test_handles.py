"""Alerts carry their handles in every channel (console, email text and HTML, Slack, webhook,
Apprise): match, story and article ids, the article's own lead, the closest seed passage
labelled as such, the aliases found, the other outlets of the story, and the relevant / not
relevant actions: signed web app links with ``api.public_url``, the CLI command without.
The webhook body is validated against ``docs/webhook.schema.json``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from monitor.alert.message import Alert, Message
from monitor.alert.render import webhook_payload
from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.pipeline.delivery import dispatch_due
from monitor.pipeline.messages import sample_message
from tests.alerts.conftest import Env, SmtpServer
from tests.support.httpserver import LocalServer, Reply

pytestmark = pytest.mark.filterwarnings("ignore:.imghdr. is deprecated:DeprecationWarning")

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "webhook.schema.json").read_text()
)
LEAD = "Pyongyang's envoy & Moscow's minister signed a <logistics> pact on Tuesday."
PASSAGE = "North Korea ships artillery shells to Russia by rail."
PUBLIC = "https://monitor.example.org/app"
TOPICS = """
[[topics]]
name = "t1"
descriptions = ["x"]
channels = ["console", "mail", "slack", "hook", "tail"]
"""


def validate(body: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(body)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        for path in ("/slack", "/hook", "/apprise"):
            srv.route(path, Reply(body=b"ok"))
        yield srv


def channels(server: LocalServer, smtp_port: int, api: str = "") -> str:
    return f"""
    {api}

    [alerts.console]
    type = "console"

    [alerts.mail]
    type = "email"
    smtp_host = "127.0.0.1"
    smtp_port = {smtp_port}
    smtp_security = "plain"
    sender = "monitor@example.org"
    recipients = ["desk@example.org"]
    timeout = "3s"

    [alerts.slack]
    type = "slack"
    url = "{server.url("/slack")}"

    [alerts.hook]
    type = "webhook"
    url = "{server.url("/hook")}"

    [alerts.tail]
    type = "apprise"
    url = "json://127.0.0.1:{server.port}/apprise"
    """


def story_of_two(env: Env) -> tuple[int, int]:
    """An alerted match and a second outlet joining its story (no alert of its own)."""
    first = env.match(
        "Kim and Putin sign pact",
        feed="Wire A",
        link="https://news.example/pact",
        summary=LEAD,
        passage=PASSAGE,
        aliases=("north korea", "russia"),
    )
    env.match("Kim, Putin pact", feed="Outlet B", link="https://news.example/pact")
    return first, env.matches()[0].story_id or 0


def shown_by_channel(
    server: LocalServer, smtp: SmtpServer, console: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """Every text each channel sent (one alert), and the webhook body."""
    [mail] = smtp.handler.messages
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None
    assert html is not None
    hook = json.loads(server.requests_to("/hook")[0].body)
    shown = {
        "console": console,
        "email text": text.get_content(),
        "email html": html.get_content(),
        "slack": json.dumps(json.loads(server.requests_to("/slack")[0].body)),
        "webhook": json.dumps(hook),
        "apprise": json.loads(server.requests_to("/apprise")[0].body)["message"],
    }
    return shown, hook


def test_every_channel_carries_ids_lead_passage_aliases_outlets_and_cli_commands(
    make_env: Callable[..., Env],
    server: LocalServer,
    smtp_server: SmtpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = make_env(channels(server, smtp_server.port), TOPICS)
    match_id, story_id = story_of_two(env)
    assert dispatch_due(env.runtime).sent == 5
    shown, hook = shown_by_channel(server, smtp_server, capsys.readouterr().out)
    article_id = env.matches()[0].article_id
    for where, text in shown.items():
        assert f"match {match_id}" in text or f'"match_id": {match_id}' in text, where
        assert f"story {story_id}" in text or f'"story_id": {story_id}' in text, where
        assert "Pyongyang" in text, where  # the article's lead
        assert "logistics" in text, where
        assert PASSAGE in text, where
        assert "north korea" in text, where  # aliases found
        assert "russia" in text, where
        assert "Outlet B" in text, where  # the other outlet of the story
        assert f"monitor feedback {match_id} relevant" in text, where
        assert f"monitor feedback {match_id} irrelevant" in text, where
        assert "/judge/" not in text, where
    for where in ("console", "email text", "email html", "slack", "apprise"):
        assert "Closest seed passage" in shown[where], where
        assert f"article {article_id}" in shown[where], where
    assert f"Lead: {LEAD}" in shown["email text"]
    assert (
        "Pyongyang&#39;s envoy &amp; Moscow&#39;s minister signed a &lt;logistics&gt;"
        in (shown["email html"])
    )
    assert "&lt;logistics&gt;" in shown["slack"]
    validate(hook)
    assert (hook["match_id"], hook["article_id"], hook["story_id"]) == (
        match_id,
        article_id,
        story_id,
    )
    assert hook["topic"] == "t1"
    assert hook["score"] == 0.8
    assert hook["explanation"]["passage"] == PASSAGE
    assert hook["explanation"]["aliases"] == ["north korea", "russia"]
    assert hook["alerts"][0]["lead"] == LEAD
    assert hook["alerts"][0]["feedback"]["irrelevant"] == {
        "url": None,
        "command": f"monitor feedback {match_id} irrelevant",
    }


def test_with_a_public_url_every_channel_carries_signed_judgement_links(
    make_env: Callable[..., Env],
    server: LocalServer,
    smtp_server: SmtpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = f'[api]\npublic_url = "{PUBLIC}/"\ntoken = "t0ken-for-tests"'
    env = make_env(channels(server, smtp_server.port, api), TOPICS)
    match_id, _story = story_of_two(env)
    assert dispatch_due(env.runtime).sent == 5
    shown, hook = shown_by_channel(server, smtp_server, capsys.readouterr().out)
    link = re.compile(
        re.escape(PUBLIC)
        + rf"/judge/{match_id}/(relevant|irrelevant)\?expires=\d+&(amp;)?sig=[0-9a-f]{{64}}"
    )
    for where, text in shown.items():
        assert {m.group(1) for m in link.finditer(text)} == {"relevant", "irrelevant"}, where
        assert "monitor feedback" not in text, where
    assert "t0ken-for-tests" not in "".join(shown.values())
    validate(hook)
    assert hook["alerts"][0]["feedback"]["relevant"]["url"].startswith(f"{PUBLIC}/judge/")
    slack = json.loads(shown["slack"])
    actions = slack["blocks"][3]["elements"][-1]["text"]
    assert "|Relevant>" in actions
    assert "|Not relevant>" in actions


def test_digest_and_notice_bodies_validate_against_the_schema() -> None:
    alerts = tuple(
        Alert(
            topic="t1",
            title=f"story {n}",
            link=f"https://news.example/{n}",
            source="Wire",
            score=0.7,
            published_at=datetime(2026, 11, 2, tzinfo=UTC),
            match_id=n,
            article_id=10 + n,
            story_id=None,
        )
        for n in range(1, 4)
    )
    digest = webhook_payload(Message(kind="digest", topic="t1", alerts=alerts), "digest-1")
    validate(digest)
    assert digest["match_id"] is None
    assert [a["match_id"] for a in digest["alerts"]] == [1, 2, 3]
    validate(webhook_payload(Message(kind="health", notice="feed X is failing"), "health-1"))
    validate(webhook_payload(sample_message("hook"), "test-1"))
    with pytest.raises(jsonschema.ValidationError):  # the schema can fail
        validate({**digest, "kind": "alert"})  # an alert carries exactly one article


def test_public_url_must_be_http_and_needs_a_token(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[api]\npublic_url = "https://m.example/"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"public_url needs api.token"):
        load_config(path, environ={})
    path.write_text('[api]\ntoken = "x"\npublic_url = "ftp://m.example"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"api.public_url: .*expected an http\(s\) URL"):
        load_config(path, environ={})
    path.write_text('[api]\ntoken = "x"\npublic_url = "https://m.example/"\n', encoding="utf-8")
    assert load_config(path, environ={}).api.public_url == "https://m.example"
