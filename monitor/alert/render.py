"""Turn a :class:`Message` into what each channel sends: email text + HTML, Slack Block Kit,
webhook JSON. Feed content is untrusted: HTML goes through Jinja2 autoescape, Slack text through
:func:`slack_escape`, links that are not http(s) are dropped."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from monitor.alert.message import Alert, Message

TEMPLATES = Path(__file__).resolve().parent / "templates"
SLACK_TEXT_LIMIT = 2900  # a section block holds 3000 characters


def safe_url(url: str) -> str:
    """Only http(s) links reach a user: a ``javascript:`` link in a feed becomes ``#``."""
    return url if url.lower().startswith(("http://", "https://")) else "#"


@lru_cache(maxsize=2)
def _environment(html: bool) -> Environment:
    # autoescape is on for the HTML template; the text template is plain text (not HTML)
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=html,  # noqa: S701
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["safe_url"] = safe_url
    return env


def subject(message: Message) -> str:
    """``[topic] title``; newlines in a hostile title cannot inject headers."""
    topic = message.topic or "monitor"
    return " ".join(f"[{topic}] {message.headline}".split())[:250]


def email_text(message: Message) -> str:
    return _environment(False).get_template("email.txt.j2").render(message=message)


def email_html(message: Message) -> str:
    return _environment(True).get_template("email.html.j2").render(message=message)


def slack_escape(text: str) -> str:
    """Slack mrkdwn control characters: only &, < and > must be escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str, title: str) -> str:
    url = safe_url(url)
    if url == "#":
        return slack_escape(title)
    # | and > end a Slack link; percent-encode them inside the URL
    url = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{url}|{slack_escape(title)}>"


def _alert_blocks(alert: Alert) -> list[dict[str, Any]]:
    title = ("Update: " if alert.is_story_update else "") + alert.title
    context = [f"*Source:* {slack_escape(alert.source)}"]
    if alert.published_at:
        context.append(f"*Published:* {alert.published_at.strftime('%Y-%m-%d %H:%M UTC')}")
    context += [f"*Topic:* {slack_escape(alert.topic)}", f"*Score:* {alert.score:.2f}"]
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*{_slack_link(alert.link, title)}*"},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " | ".join(context)}]},
    ]
    if alert.passage:
        quoted = slack_escape(alert.passage[:SLACK_TEXT_LIMIT]).replace("\n", " ")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"> {quoted}"}})
    if alert.also_reported_by:
        also = slack_escape(", ".join(alert.also_reported_by))
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"Also reported by: {also}"}],
            }
        )
    return blocks


def slack_payload(message: Message) -> dict[str, Any]:
    """An incoming-webhook body: ``text`` is the notification fallback, ``blocks`` the layout."""
    blocks: list[dict[str, Any]] = []
    if message.kind in ("health", "test"):
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(message.notice)}}
        )
    else:
        if message.kind == "digest":
            head = f"*{slack_escape(message.headline)}* for topic {slack_escape(message.topic)}"
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": head}})
        for index, alert in enumerate(message.alerts[:15]):  # Slack allows 50 blocks
            if index:
                blocks.append({"type": "divider"})
            blocks.extend(_alert_blocks(alert))
        if len(message.alerts) > 15:
            more = f"...and {len(message.alerts) - 15} more"
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return {"text": slack_escape(subject(message)), "blocks": blocks}


def _alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "topic": alert.topic,
        "title": alert.title,
        "link": alert.link,
        "source": alert.source,
        "score": round(alert.score, 4),
        "published_at": alert.published_at.isoformat() if alert.published_at else None,
        "passage": alert.passage,
        "also_reported_by": list(alert.also_reported_by),
        "story_update": alert.is_story_update,
    }


def webhook_payload(message: Message, key: str) -> dict[str, Any]:
    """The JSON a generic webhook receives; ``id`` repeats the Idempotency-Key header."""
    return {
        "id": key,
        "kind": message.kind,
        "topic": message.topic,
        "subject": subject(message),
        "notice": message.notice,
        "alerts": [_alert_json(a) for a in message.alerts],
        "created_at": message.created_at.isoformat() if message.created_at else None,
    }
