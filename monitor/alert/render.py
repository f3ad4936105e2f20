"""Turn a :class:`Message` into what each channel sends: email text + HTML, Slack Block Kit,
webhook JSON. Feed content is untrusted: HTML goes through Jinja2 autoescape, Slack text through
:func:`slack_escape`; links that are not http(s) and control characters were already removed
when the :class:`~monitor.alert.message.Alert` was made.

Slack rejects a whole message (HTTP 400, which is permanent) when it breaks a Block Kit limit,
so every Slack field is cut to a size that keeps any one alert within those limits, and a digest
goes out in parts of at most :data:`SLACK_ALERTS_PER_MESSAGE` alerts.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from monitor.alert.message import Alert, Message, MessageKind, Part, http_link

TEMPLATES = Path(__file__).resolve().parent / "templates"

# Slack's documented limits (docs.slack.dev, Block Kit "blocks" and chat.postMessage)
SLACK_MAX_BLOCKS = 50  # blocks in one message
SLACK_TEXT_CHARS = 3000  # text of a section block, and of any text object
SLACK_FALLBACK_CHARS = 40_000  # the top-level ``text``; Slack truncates beyond it
# Our own caps on one alert's fields: long enough to read, short enough that an alert stays well
# under the section limit even with a 2,048-character link, and that a full part of a digest
# stays a message someone can read.
SLACK_TITLE_CHARS = 300
SLACK_LINK_CHARS = 2100  # longer links are not linked (parse keeps at most 2,048 characters)
SLACK_FIELD_CHARS = 200  # source, topic
SLACK_PASSAGE_CHARS = 600
SLACK_LEAD_CHARS = 600  # the article's lead (already cut to 300 characters before escaping)
SLACK_LIST_CHARS = 300  # "also reported by"
SLACK_BLOCKS_PER_ALERT = 5  # divider, title, context, lead + passage, notes + actions
# a digest's heading block, then alerts: (50 - 1) // 5 = 9 alerts per message
SLACK_ALERTS_PER_MESSAGE = (SLACK_MAX_BLOCKS - 1) // SLACK_BLOCKS_PER_ALERT
ELLIPSIS = "\u2026"


def safe_url(url: str) -> str:
    """Only http(s) links reach a user: a ``javascript:`` link in a feed becomes ``#``."""
    return http_link(url) or "#"


def max_alerts_per_message(channel_type: str) -> int | None:
    """How many alerts one message of this channel type may hold (None: no limit), so the
    pipeline can queue a long digest as several deliveries, each sent and retried alone."""
    return SLACK_ALERTS_PER_MESSAGE if channel_type == "slack" else None


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


def slack_fit(text: str, limit: int) -> str:
    """``text`` escaped for Slack and, if longer than ``limit`` once escaped, cut with an
    ellipsis. Measured after escaping (``&`` becomes five characters) and cut between
    characters, so an entity is never split."""
    escaped = slack_escape(text)
    if len(escaped) <= limit:
        return escaped
    pieces: list[str] = []
    used = 0
    for char in text:
        piece = slack_escape(char)
        if used + len(piece) > limit - len(ELLIPSIS):
            break
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces).rstrip() + ELLIPSIS


def _slack_link(url: str, title: str) -> str:
    text = slack_fit(title, SLACK_TITLE_CHARS)
    url = http_link(url)
    # | and > end a Slack link; percent-encode them inside the URL
    url = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    if not url or len(url) > SLACK_LINK_CHARS:
        return text
    return f"<{url}|{text}>"


def _mrkdwn_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _mrkdwn_context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _judgement_text(alert: Alert) -> str:
    """Signed links (``<url|Relevant>``), or the CLI commands in code spans."""
    if alert.judged_by_link:
        return " \u00b7 ".join(_slack_link(j.url, j.label) for j in alert.judgements)
    return " \u00b7 ".join(f"{j.label}: `{slack_escape(j.command)}`" for j in alert.judgements)


def _alert_blocks(alert: Alert) -> list[dict[str, Any]]:
    """At most :data:`SLACK_BLOCKS_PER_ALERT` - 1 blocks (the divider is added by the caller):
    title; facts and handles; lead and closest seed passage; aliases, other outlets, actions."""
    title = ("Update: " if alert.is_story_update else "") + alert.title
    context = [f"*Source:* {slack_fit(alert.source, SLACK_FIELD_CHARS)}"]
    if alert.published_at:
        context.append(f"*Published:* {alert.published_at.strftime('%Y-%m-%d %H:%M UTC')}")
    context += [
        f"*Topic:* {slack_fit(alert.topic, SLACK_FIELD_CHARS)}",
        f"*Score:* {alert.score:.2f}",
    ]
    if alert.handles:
        context.append(alert.handles)
    blocks = [_mrkdwn_section(f"*{_slack_link(alert.link, title)}*")]
    blocks.append(_mrkdwn_context(" | ".join(context)))
    body = []
    if alert.lead:
        body.append(slack_fit(alert.lead, SLACK_LEAD_CHARS))
    if alert.passage:
        quoted = slack_fit(" ".join(alert.passage.split()), SLACK_PASSAGE_CHARS)
        body.append(f"_Closest seed passage:_\n> {quoted}")
    if body:
        blocks.append(_mrkdwn_section("\n".join(body)))
    notes = []
    if alert.aliases:
        notes.append(f"Aliases found: {slack_fit(', '.join(alert.aliases), SLACK_LIST_CHARS)}")
    if alert.also_reported_by:
        also = slack_fit(", ".join(alert.also_reported_by), SLACK_LIST_CHARS)
        notes.append(f"Also reported by: {also}")
    if alert.judgements:
        notes.append(_judgement_text(alert))
    if notes:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": n} for n in notes]}
        )
    return blocks


def slack_payload(message: Message) -> dict[str, Any]:
    """One incoming-webhook body: ``text`` is the notification fallback, ``blocks`` the layout.

    Within Slack's limits only for at most :data:`SLACK_ALERTS_PER_MESSAGE` alerts: a longer
    digest goes through :func:`slack_payloads`.
    """
    blocks: list[dict[str, Any]] = []
    if message.kind in (MessageKind.HEALTH, MessageKind.TEST):
        blocks.append(_mrkdwn_section(slack_fit(message.notice, SLACK_TEXT_CHARS)))
    else:
        if message.kind == MessageKind.DIGEST:
            headline = slack_fit(message.headline, SLACK_FIELD_CHARS)
            topic = slack_fit(message.topic, SLACK_FIELD_CHARS)
            blocks.append(_mrkdwn_section(f"*{headline}* for topic {topic}"))
        for index, alert in enumerate(message.alerts):
            if index:
                blocks.append({"type": "divider"})
            blocks.extend(_alert_blocks(alert))
    return {"text": slack_fit(subject(message), SLACK_FALLBACK_CHARS), "blocks": blocks}


def slack_payloads(message: Message) -> list[dict[str, Any]]:
    """The Slack messages for ``message``, in order: one, or a digest cut into parts of
    :data:`SLACK_ALERTS_PER_MESSAGE` alerts, each marked "part i of n".

    The pipeline already queues a long digest as one delivery per part (see
    ``max_alerts_per_message``); this split only serves messages made otherwise.
    """
    size = SLACK_ALERTS_PER_MESSAGE
    if len(message.alerts) <= size:
        return [slack_payload(message)]
    chunks = [message.alerts[i : i + size] for i in range(0, len(message.alerts), size)]
    total = message.part.total_alerts if message.part else len(message.alerts)
    return [
        slack_payload(replace(message, alerts=chunk, part=Part(number, len(chunks), total)))
        for number, chunk in enumerate(chunks, start=1)
    ]


def _explanation_json(alert: Alert) -> dict[str, Any]:
    return {
        "passage": alert.passage,
        "passage_source": alert.passage_source,
        "semantic": round(alert.semantic, 4) if alert.semantic is not None else None,
        "aliases": list(alert.aliases),
        "score": round(alert.score, 4),
    }


def _judgements_json(alert: Alert) -> dict[str, Any]:
    return {
        j.verdict: {"url": j.url or None, "command": j.command or None} for j in alert.judgements
    }


def _alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "match_id": alert.match_id,
        "article_id": alert.article_id,
        "story_id": alert.story_id,
        "topic": alert.topic,
        "title": alert.title,
        "link": alert.link,
        "source": alert.source,
        "score": round(alert.score, 4),
        "published_at": alert.published_at.isoformat() if alert.published_at else None,
        "lead": alert.lead,
        "passage": alert.passage,
        "explanation": _explanation_json(alert),
        "also_reported_by": list(alert.also_reported_by),
        "story_update": alert.is_story_update,
        "feedback": _judgements_json(alert),
    }


def webhook_payload(message: Message, key: str) -> dict[str, Any]:
    """The JSON a generic webhook receives (documented by ``docs/webhook.schema.json``);
    ``id`` repeats the Idempotency-Key header. A single alert's handles are repeated at the
    top level (``match_id``, ``article_id``, ``story_id``, ``score``, ``explanation``), null
    for digests and notices, whose alerts each carry their own."""
    single = message.alerts[0] if message.kind == MessageKind.ALERT and message.alerts else None
    return {
        "id": key,
        "kind": message.kind.value,
        "topic": message.topic,
        "subject": subject(message),
        "notice": message.notice,
        "match_id": single.match_id if single else None,
        "article_id": single.article_id if single else None,
        "story_id": single.story_id if single else None,
        "score": round(single.score, 4) if single else None,
        "explanation": _explanation_json(single) if single else None,
        "alerts": [_alert_json(a) for a in message.alerts],
        "created_at": message.created_at.isoformat() if message.created_at else None,
    }
