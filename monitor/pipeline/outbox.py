"""The hand-off from matching to delivery: the outbox.

``enqueue_alerts`` runs inside the transaction that inserts the match, so a match and its
deliveries exist together or not at all: a crash between the two cannot lose an alert.

It also decides *how* the match will alert:

- **Story grouping**: a match joins an open story of its topic (started within
  ``delivery.story_window``) when its article has the same canonical link as a member, or an
  embedding with cosine >= ``delivery.story_similarity`` to a member's
  (``delivery.story_similarity_across_languages`` when the two are in different languages). A
  joining match gets ``alerted = False`` and no delivery, unless the topic sets
  ``realert_on_story_update``; the story's earlier alert shows it as "also reported by" when it
  is rendered later (digests).
- **Digests and budgets**: a channel in ``mode = "digest"`` queues the alert for its next
  digest (status ``queued_digest``); so does an immediate channel once the topic's
  ``alert_budget_per_hour`` is used up on it.

Quiet hours are not decided here: they hold *delivery*, so the dispatcher skips quiet channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from monitor.config import TopicConfig
from monitor.domain import AlertPayload, DeliveryStatus
from monitor.embed import from_bytes
from monitor.errors import ModelError
from monitor.pipeline.runtime import Runtime
from monitor.store import outbox
from monitor.store.models import Article, Delivery, Match, Topic


def enqueue_alerts(
    session: Session,
    runtime: Runtime,
    match: Match,
    article: Article,
    vector: Sequence[float] | None = None,
) -> list[Delivery]:
    """Group the match into a story and write one delivery per enabled channel of its topic.

    Called by the matching stage for matches of non-history articles only, after the Match row
    is flushed (so ``match.id`` is set), inside the same session/transaction. ``vector`` is the
    article's embedding; when None, the article's stored embedding is used.
    Returns the deliveries written (empty when the match joined an already-alerted story).
    """
    topic = session.get(Topic, match.topic_id)
    spec = next((t for t in runtime.config.topics if topic and t.name == topic.name), None)
    if topic is None or spec is None:
        return []
    now = runtime.clock.now()
    joined = assign_story(session, runtime, match, article, vector, now)
    if joined and not spec.realert_on_story_update:
        outbox.mark_not_alerted(session, match)
        return []
    return _write_deliveries(session, runtime, spec, topic, match, article, now, update=joined)


def _write_deliveries(
    session: Session,
    runtime: Runtime,
    spec: TopicConfig,
    topic: Topic,
    match: Match,
    article: Article,
    now: datetime,
    *,
    update: bool,
) -> list[Delivery]:
    channels = runtime.config.enabled_channels()
    deliveries = []
    for name in spec.channels:
        channel = channels.get(name)
        if channel is None:
            continue
        status = DeliveryStatus.PENDING
        if channel.mode == "digest" or _over_budget(session, spec, topic, name, now):
            status = DeliveryStatus.QUEUED_DIGEST
        payload = AlertPayload(
            article_id=article.id,
            topic=topic.name,
            score=match.score,
            story_id=match.story_id,
            story_update=update,
        )
        # flushed by the store: the next channel's budget count sees this row
        deliveries.append(
            outbox.add_alert(
                session, match_id=match.id, channel=name, status=status, payload=payload, now=now
            )
        )
    return deliveries


def _over_budget(
    session: Session, spec: TopicConfig, topic: Topic, channel: str, now: datetime
) -> bool:
    budget = spec.alert_budget_per_hour
    if budget is None:
        return False
    used = outbox.immediate_count(
        session, topic_id=topic.id, channel=channel, since=now - timedelta(hours=1)
    )
    return used >= budget


# -- stories --------------------------------------------------------------------------------


def assign_story(
    session: Session,
    runtime: Runtime,
    match: Match,
    article: Article,
    vector: Sequence[float] | None,
    now: datetime,
) -> bool:
    """Attach the match to an open story of its topic, or start one. True when it joined."""
    cfg = runtime.config.delivery
    members = outbox.story_members(
        session, match.topic_id, now - timedelta(seconds=cfg.story_window), exclude_match=match.id
    )
    story_id = _same_link(members, article.canonical_link)
    if story_id is None and members:
        story_id = _most_similar(
            session,
            members,
            article,
            vector,
            cfg.story_similarity,
            cfg.story_similarity_across_languages,
        )
    if story_id is not None and outbox.join_story(session, match, story_id, now):
        return True
    outbox.start_story(session, match, article, now)
    return False


def _same_link(members: Sequence[outbox.StoryMember], link: str) -> int | None:
    if not link:
        return None
    return next((m.story_id for m in members if m.canonical_link == link), None)


def _most_similar(
    session: Session,
    members: Sequence[outbox.StoryMember],
    article: Article,
    vector: Sequence[float] | None,
    threshold: float,
    across_languages: float,
) -> int | None:
    """The story of the member most similar to ``article``, if similar enough.

    Two articles in different known languages need only ``across_languages``: a multilingual
    model keeps some of the language in the vector, so two reports of one event in two
    languages are less alike than two in one language (see notes/match.md for the figures).
    The member with the largest similarity above its own threshold wins.
    """
    ids = [m.article_id for m in members]
    stored = outbox.embeddings_of(session, [*ids, article.id])
    own = _unit(np.asarray(vector, dtype=np.float32)) if vector is not None else None
    if own is None and article.id in stored:
        own = _decoded(*stored[article.id])
    if own is None:
        return None
    best_story, best = None, -math.inf
    for member in members:
        if member.article_id not in stored:
            continue
        other = _decoded(*stored[member.article_id])
        if other is None or other.shape != own.shape:
            continue
        needed = (
            across_languages
            if _different_languages(article.language, member.language)
            else threshold
        )
        margin = float(np.dot(own, other)) - needed
        if margin > best:
            best_story, best = member.story_id, margin
    return best_story if best >= 0 else None


def _different_languages(a: str | None, b: str | None) -> bool:
    """True when both languages are known and differ (``en`` vs ``id``; ``en-GB`` is ``en``)."""
    first, second = _base_language(a), _base_language(b)
    return bool(first and second and first != second)


def _base_language(code: str | None) -> str:
    return (code or "").split("-", 1)[0].split("_", 1)[0].strip().lower()


def _decoded(dim: int, raw: bytes) -> np.ndarray | None:
    """A stored vector as a unit vector; None when it is zero or not ``dim`` long (corrupt)."""
    try:
        return _unit(from_bytes(raw, dim))
    except ModelError:
        return None


def _unit(vec: np.ndarray) -> np.ndarray | None:
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else None
