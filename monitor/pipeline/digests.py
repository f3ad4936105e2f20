"""Digests: alerts a channel queued (``mode = "digest"``, or over a topic's hourly budget) are
folded, at each digest slot of the channel, into one digest per topic.

Crash story: the members are marked ``digested`` and the digest's rows added in one
transaction keyed ``digest-<channel>-<topic>-<slot>``, so a crash either leaves the alerts
queued for the next run or has queued the digest; a second worker building the same digest at
the same moment hits the key's unique constraint and leaves it to the first. A digest longer
than one message of its channel is queued as several rows (``-part2``...), each sent and
retried alone (see ``pipeline/delivery.py``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.alert import render
from monitor.alert.schedule import digest_slot
from monitor.domain import DigestPayload
from monitor.logs import event
from monitor.pipeline.runtime import Runtime
from monitor.store import db, outbox
from monitor.store.models import Delivery

log = logging.getLogger(__name__)


def build_digests(runtime: Runtime) -> int:
    """Fold alerts queued before each channel's latest digest slot into one digest per topic."""
    now = runtime.clock.now()
    built = 0
    with db.session_scope(runtime.sessions) as session:
        names = outbox.digest_channels(session)
    for name in names:
        channel = runtime.config.alerts.get(name)
        if channel is None:
            continue
        slot = digest_slot(now, channel.digest_schedule, channel.timezone)
        per_message = render.max_alerts_per_message(channel.type)
        built += _digest_channel(runtime, name, slot, now, per_message)
    return built


def _digest_channel(
    runtime: Runtime, name: str, slot: datetime, now: datetime, per_message: int | None
) -> int:
    with db.session_scope(runtime.sessions) as session:
        rows = outbox.queued_for_digest(session, name, slot)
        topics = sorted({outbox.topic_of(r) for r in rows})
    built = 0
    for topic in topics:
        key = f"digest-{name}-{topic}-{slot:%Y%m%dT%H%MZ}"
        try:
            with db.session_scope(runtime.sessions) as session:
                if outbox.key_exists(session, key):
                    continue  # this slot's digest went out already; the rest wait for the next
                members = [
                    r
                    for r in outbox.queued_for_digest(session, name, slot)
                    if outbox.topic_of(r) == topic
                ]
                if not members:
                    continue
                outbox.mark_digested(session, [m.id for m in members])
                parts = _queue_digest(session, name, key, topic, slot, now, members, per_message)
            built += 1
            event(
                log,
                logging.INFO,
                "digest queued",
                channel=name,
                topic=topic,
                alerts=len(members),
                parts=parts,
                slot=slot.isoformat(),
            )
        except IntegrityError:
            continue  # another worker built the same digest at the same moment
    return built


def _queue_digest(
    session: Session,
    channel: str,
    key: str,
    topic: str,
    slot: datetime,
    now: datetime,
    members: list[Delivery],
    per_message: int | None,
) -> int:
    """Add the digest's outbox rows, one per part of at most ``per_message`` alerts, in order
    (ids ascending), so each part is sent and retried alone; returns the number of parts."""
    size = per_message or len(members)
    chunks = [members[i : i + size] for i in range(0, len(members), size)]
    split = len(chunks) > 1
    for number, chunk in enumerate(chunks, start=1):
        payload = DigestPayload(
            topic=topic,
            slot=slot.isoformat(),
            members=tuple(m.id for m in chunk),
            part=number if split else None,
            parts=len(chunks) if split else None,
            total=len(members) if split else None,
        )
        # added in part order (the store flushes each): a channel's rows are sent by id
        outbox.add_digest(
            session,
            channel=channel,
            key=key if number == 1 else f"{key}-part{number}",
            payload=payload,
            now=now,
        )
    return len(chunks)
