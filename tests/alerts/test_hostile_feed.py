"""A hostile feed written by us goes the whole way: fetched from a loopback server, parsed,
stored, matched by hand (as the matcher would), then sent through every channel (console,
email text and HTML through real SMTP, Slack, webhook, Apprise). No channel offers a
``javascript:`` link, no user-visible field keeps a bidi or control character, and the link
users see (alerts, and the API's read model) has no tracking parameters, while the entry's
identity (entry key, canonical link) is what it always was."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.alert import render
from monitor.alert.message import Alert, Message
from monitor.feeds.parse import ParserPool, display_link
from monitor.pipeline.delivery import dispatch_due
from monitor.pipeline.outbox import enqueue_alerts
from monitor.pipeline.polling import poll_due
from monitor.store import db
from monitor.store.models import Article, Feed, Match, Topic
from monitor.store.read_models import MatchFilter, article_detail, list_matches
from tests.alerts.conftest import Env, SmtpServer
from tests.support.httpserver import LocalServer, Reply

pytestmark = pytest.mark.filterwarnings("ignore:.imghdr. is deprecated:DeprecationWarning")

FEED = Path(__file__).resolve().parent.parent / "fixtures" / "feeds" / "hostile_alert_fields.xml"
TRACKED_RAW = (
    "https://news.example/story?id=7&utm_source=rss&utm_medium=feed&ref=home&fbclid=abc#part-2"
)
TRACKED_SHOWN = "https://news.example/story?id=7#part-2"
# what must never reach a user: bidi controls, C0 (but newline and tab) and C1 controls
FORBIDDEN = re.compile(
    "[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u0000-\u0008\u000b-\u001f\u007f-\u009f]"
)
TRACKING = re.compile(r"utm_|fbclid|ref=home", re.IGNORECASE)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        srv.route(
            "/hostile.xml",
            Reply(body=FEED.read_bytes(), headers={"Content-Type": "application/rss+xml"}),
        )
        for path in ("/slack", "/hook", "/apprise"):
            srv.route(path, Reply(body=b"ok"))
        yield srv


def channels(server: LocalServer, smtp_port: int) -> str:
    return f"""
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


TOPICS = """
[[topics]]
name = "t1"
descriptions = ["x"]
channels = ["console", "mail", "slack", "hook", "tail"]
"""


def poll_and_match(env: Env, url: str) -> list[Article]:
    """Fetch, parse and store the feed for real, then match every article to t1 and queue its
    alerts in one transaction, as the matching stage does."""
    with db.session_scope(env.runtime.sessions) as session:
        # no name: the feed's own (hostile) title is shown; due now on the test's clock
        session.add(Feed(url=url, name="", next_poll_at=env.clock()))
    pool = ParserPool(1, timeout_s=20.0)
    env.runtime.resources.parser_pool = pool
    assert poll_due(env.runtime).articles_stored == 3
    with db.session_scope(env.runtime.sessions) as session:
        topic_id = session.scalar(select(Topic.id).where(Topic.name == "t1"))
        articles = list(session.scalars(select(Article).order_by(Article.id)))
        for article in articles:
            match = Match(
                article_id=article.id,
                topic_id=topic_id,
                score=0.9,
                semantic_score=0.9,
                explanation={"passage": article.summary},
                published_at=article.published_at,
            )
            session.add(match)
            session.flush()
            enqueue_alerts(session, env.runtime, match, article, [1.0, 0.0])
        session.expunge_all()
    return articles


def everything_shown(server: LocalServer, smtp: SmtpServer, console: str) -> dict[str, str]:
    """Every text a user was sent, by channel."""
    shown = {"console": console}
    for index, mail in enumerate(smtp.handler.messages):
        text = mail.get_body(preferencelist=("plain",))
        html = mail.get_body(preferencelist=("html",))
        assert text is not None
        assert html is not None
        shown[f"mail {index} subject"] = str(mail["Subject"])
        # SMTP lines end in CRLF; that \r is the transport's, not the feed's
        shown[f"mail {index} text"] = text.get_content().replace("\r\n", "\n")
        shown[f"mail {index} html"] = html.get_content().replace("\r\n", "\n")
    for path in ("/slack", "/hook", "/apprise"):
        for index, request in enumerate(server.requests_to(path)):
            shown[f"{path} {index}"] = request.body.decode()
    return shown


def test_hostile_feed_reaches_no_channel_as_a_link_or_with_bidi_controls(
    make_env: Callable[..., Env],
    server: LocalServer,
    smtp_server: SmtpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = make_env(channels(server, smtp_server.port), TOPICS)
    try:
        poll_and_match(env, server.url("/hostile.xml"))
        report = dispatch_due(env.runtime)
    finally:
        pool, env.runtime.resources.parser_pool = env.runtime.resources.parser_pool, None
        assert pool is not None
        pool.close()
    assert (report.sent, report.failed, report.retried) == (15, 0, 0)  # 3 articles x 5 channels
    shown = everything_shown(server, smtp_server, capsys.readouterr().out)
    assert len(shown) == 1 + 3 * 3 + 3 * 3
    for where, text in shown.items():
        assert "javascript" not in text.lower(), where
        assert not FORBIDDEN.findall(text), (where, FORBIDDEN.findall(text))
        assert not TRACKING.findall(text), where
    hooks = [json.loads(shown[f"/hook {i}"]) for i in range(3)]
    assert [h["alerts"][0]["link"] for h in hooks] == ["", "", TRACKED_SHOWN]
    assert hooks[0]["subject"] == "[t1] Invoice gpj.exe attached now"
    assert hooks[0]["alerts"][0]["source"] == "WireeteleD Desk"
    assert shown["mail 0 subject"] == "[t1] Invoice gpj.exe attached now"
    assert f"{TRACKED_SHOWN}\n" in shown["mail 2 text"]
    assert f'href="{TRACKED_SHOWN}"' in shown["mail 2 html"]
    slack = json.loads(shown["/slack 0"])
    assert slack["blocks"][0]["text"]["text"] == "*Invoice gpj.exe attached now*"  # no link
    assert f"<{TRACKED_SHOWN}|Tracked story>" in shown["/slack 2"]


def test_shown_links_are_tracking_free_and_identity_is_unchanged(
    make_env: Callable[..., Env], server: LocalServer, smtp_server: SmtpServer
) -> None:
    env = make_env(channels(server, smtp_server.port), TOPICS)
    try:
        articles = poll_and_match(env, server.url("/hostile.xml"))
    finally:
        pool, env.runtime.resources.parser_pool = env.runtime.resources.parser_pool, None
        assert pool is not None
        pool.close()
    tracked = articles[2]
    # identity as before: the entry key is the feed's own link (no guid), the canonical link
    # is what it always was, so articles stored before this change still deduplicate
    assert tracked.entry_key == TRACKED_RAW
    assert tracked.canonical_link == "https://news.example/story?id=7&ref=home"
    assert tracked.link == TRACKED_SHOWN
    with db.session_scope(env.runtime.sessions) as session:  # what the API and the page read
        rows, _cursor = list_matches(session, MatchFilter())
        assert TRACKED_SHOWN in [r["link"] for r in rows]
        assert article_detail(session, tracked.id)["link"] == TRACKED_SHOWN


def test_every_field_is_cleaned_when_an_alert_is_made() -> None:
    alert = Alert(
        topic="t\u202e1",
        title="a\u0007b\u009bc\u2066d\u2028e",
        link="  java\tscript:alert(1)",
        source="S\u200f",
        score=1.0,
        passage="line 1\r\nline\u202e 2\u0000",
        also_reported_by=("X\u202e", "\u200e"),
    )
    assert (alert.topic, alert.title, alert.source) == ("t1", "a b cd e", "S")
    assert alert.link == ""
    assert alert.passage == "line 1\nline 2"
    assert alert.also_reported_by == ("X",)
    notice = Message(kind="health", topic="feed\u202e health", notice="down\u202e\u0085 now")
    assert render.subject(notice) == "[feed health] down now"
    good = Alert(topic="t", title="t", link=" https://x.example/a b\u202ec\n", source="", score=1)
    assert good.link == "https://x.example/a%20b%E2%80%AEc"  # still the same link, shown inert


@pytest.mark.parametrize(
    ("feed_link", "shown"),
    [
        ("https://x.example/a?utm_source=x&id=3&REF=y#frag", "https://x.example/a?id=3#frag"),
        ("https://x.example/a?fbclid=1&gclid=2", "https://x.example/a"),
        ("https://X.example/a?q=%E9+x&utm_medium=m&b", "https://X.example/a?q=%E9+x&b"),
        ("https://x.example/a?reference=1&ref_src=twsrc", "https://x.example/a?reference=1"),
        ("https://x.example/a", "https://x.example/a"),
        ("mailto:a@x.example?utm_source=x", "mailto:a@x.example?utm_source=x"),
    ],
)
def test_display_link_drops_only_tracking_parameters(feed_link: str, shown: str) -> None:
    assert display_link(feed_link) == shown
