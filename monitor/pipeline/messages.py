"""Outbox rows -> the plain :class:`~monitor.alert.message.Message` a channel sends.

A message is rendered at send time, not when it is queued, so a digest shows every outlet that
reported the story by then, and a deleted match fails its delivery for good instead of sending
stale text.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from monitor import signing
from monitor.alert.message import (
    Alert,
    Judgement,
    Message,
    Part,
    feedback_command,
    http_link,
    lead_of,
)
from monitor.config import Config
from monitor.domain import AlertPayload, DeliveryKind, DigestPayload, NoticePayload
from monitor.errors import PermanentDeliveryError
from monitor.store import outbox
from monitor.store.models import Article, Delivery, Feed, Match, Topic
from monitor.store.read_models import explanation_aliases


def build_message(session: Session, config: Config, row: Delivery) -> Message:
    """Turn an outbox row into the plain Message a channel sends (rendered at send time, so a
    digest shows every outlet that reported the story by then)."""
    payload = outbox.payload_of(row)
    if isinstance(payload, NoticePayload):
        return Message(
            kind=row.kind,
            topic=payload.topic,
            notice=payload.notice,
            created_at=row.created_at,
        )
    if isinstance(payload, DigestPayload):
        members = [session.get(Delivery, i) for i in payload.members]
        alerts = tuple(
            a
            for m in members
            if m is not None
            for a in [_alert_for(session, config, m.match_id, _alert_payload(m))]
            if a
        )
        return Message(
            kind=DeliveryKind.DIGEST,
            topic=payload.topic,
            alerts=alerts,
            recipients=_recipients(config, payload.topic),
            created_at=row.created_at,
            part=_digest_part(payload),
        )
    alert = _alert_for(session, config, row.match_id, payload)
    if alert is None:
        raise PermanentDeliveryError(f"match {row.match_id} of this alert no longer exists")
    return Message(
        kind=DeliveryKind.ALERT,
        topic=alert.topic,
        alerts=(alert,),
        recipients=_recipients(config, alert.topic),
        created_at=row.created_at,
    )


def _alert_payload(row: Delivery) -> AlertPayload | None:
    payload = outbox.payload_of(row)
    return payload if isinstance(payload, AlertPayload) else None


def _digest_part(payload: DigestPayload) -> Part | None:
    """Which part of a split digest this row is (None for a digest sent whole)."""
    if payload.part is None or payload.parts is None or payload.parts < 2:
        return None
    return Part(payload.part, payload.parts, payload.total or 0)


def _recipients(config: Config, topic: str) -> tuple[str, ...]:
    spec = next((t for t in config.topics if t.name == topic), None)
    return tuple(spec.recipients) if spec else ()


def judgements(config: Config, match_id: int) -> tuple[Judgement, ...]:
    """The alert's relevant / not relevant actions: signed links to ``api.public_url``, or the
    CLI commands when no public URL is set (the web app is not reachable from the reader)."""
    key = signing.server_key(config.api.token.get_secret_value())
    public = config.api.public_url
    if public and key is not None:
        return tuple(
            Judgement(v, url=signing.judgement_url(public, key, match_id, v))
            for v in signing.VERDICTS
        )
    return tuple(Judgement(v, command=feedback_command(match_id, v)) for v in signing.VERDICTS)


def _alert_for(
    session: Session, config: Config, match_id: int | None, payload: AlertPayload | None
) -> Alert | None:
    match = session.get(Match, match_id) if match_id is not None else None
    if match is None:
        return None
    article = session.get(Article, match.article_id)
    topic = session.get(Topic, match.topic_id)
    if article is None or topic is None:
        return None
    feed = session.get(Feed, article.feed_id)
    source = feed.label if feed else ""
    also: list[str] = []
    if match.story_id is not None:
        also = [s for s in outbox.story_sources(session, match.story_id, match.id) if s != source]
    explanation = match.explanation or {}
    return Alert(
        topic=topic.name,
        title=article.title or http_link(article.link) or "(untitled)",
        link=article.link,
        source=source,
        score=match.score,
        published_at=article.published_at,
        passage=str(explanation.get("passage", "") or ""),
        also_reported_by=tuple(also),
        is_story_update=payload is not None and payload.story_update,
        match_id=match.id,
        article_id=article.id,
        story_id=match.story_id,
        lead=lead_of(article.summary or ""),
        aliases=tuple(explanation_aliases(explanation)),
        semantic=match.semantic_score,
        passage_source=str(explanation.get("passage_source", "") or ""),
        judgements=judgements(config, match.id),
    )


def sample_message(channel: str) -> Message:
    """A harmless alert for `monitor alerts test`, with characters that must be escaped."""
    alert = Alert(
        topic="test",
        title="Test alert from monitor <&> (you can ignore it)",
        link="https://example.org/monitor-test",
        source="monitor",
        score=1.0,
        published_at=datetime.now(UTC),
        passage="If you read this, the channel works.",
    )
    return Message(
        kind=DeliveryKind.ALERT,
        topic="test",
        alerts=(alert,),
        created_at=alert.published_at,
        extra={"channel": channel},
    )
