"""The hand-off from matching to delivery: the outbox.

``enqueue_alerts`` runs inside the transaction that inserts the match, so a match and its
deliveries exist together or not at all: a crash between the two cannot lose an alert.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from monitor.pipeline.runtime import Runtime
from monitor.store.models import Article, Delivery, Match, Topic


def enqueue_alerts(
    session: Session,
    runtime: Runtime,
    match: Match,
    article: Article,
    vector: Sequence[float] | None = None,
) -> list[Delivery]:
    """Write one pending delivery per enabled channel of the match's topic.

    Called by the matching stage for matches of non-history articles only, after the Match row
    is flushed (so ``match.id`` is set), inside the same session/transaction. ``vector`` is the
    article's embedding (used to group articles of one story).

    First version: one immediate delivery per channel. Story grouping, digests, budgets and
    quiet hours are the delivery stage's (issue 5) to add here.
    """
    topic = session.get(Topic, match.topic_id)
    if topic is None:
        return []
    spec = next((t for t in runtime.config.topics if t.name == topic.name), None)
    if spec is None:
        return []
    channels = runtime.config.enabled_channels()
    deliveries = []
    for name in spec.channels:
        if name not in channels:
            continue
        delivery = Delivery(
            match_id=match.id,
            channel=name,
            kind="match",
            idempotency_key=f"match-{match.id}-{name}",
            payload={"article_id": article.id, "topic": topic.name, "score": match.score},
        )
        session.add(delivery)
        deliveries.append(delivery)
    return deliveries
