"""Feed-health notices: the operator channel (``delivery.health_channel``) hears once when a
feed has failed for ``delivery.health_after``, and once when it recovers.

Polling keeps ``Feed.failing_since``; the notices already queued are the memory of what was
reported (one "down" per failing period, keyed by its start), so a crash between queueing and
sending neither loses nor repeats a notice: the key is unique and the notice is an outbox row
like any alert.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from monitor.domain import NoticePayload
from monitor.logs import event
from monitor.pipeline.runtime import Runtime
from monitor.store import db, outbox
from monitor.store.models import Delivery, Feed

log = logging.getLogger(__name__)


def queue_health_alerts(runtime: Runtime) -> int:
    """Tell the operator channel once when a feed has failed for ``health_after``, once when it
    recovers. Polling keeps ``Feed.failing_since``; the notices already queued (one "down" per
    failing period, keyed by its start) say what was reported."""
    cfg = runtime.config.delivery
    if not cfg.health_channel or cfg.health_channel not in runtime.config.enabled_channels():
        return 0
    now = runtime.clock.now()
    queued = 0
    with db.session_scope(runtime.sessions) as session:
        latest = outbox.latest_health_notices(session)
        for feed_id, notice in latest.items():
            feed = session.get(Feed, feed_id)
            if feed is not None and _recovered(feed, notice):
                text = f"Feed recovered: {feed.label} ({feed.url})."
                _health_row(
                    session,
                    cfg.health_channel,
                    feed,
                    notice.idempotency_key.replace("-down-", "-up-"),
                    text,
                    now,
                    "up",
                )
                outbox.set_health_alerted(session, feed.id, None)
                queued += 1
        for feed in outbox.feeds_failing_since(session, now - timedelta(seconds=cfg.health_after)):
            assert feed.failing_since is not None
            key = f"health-{feed.id}-down-{feed.failing_since:%Y%m%dT%H%M%S}"
            if outbox.key_exists(session, key):
                continue
            hours = (now - feed.failing_since).total_seconds() / 3600
            text = (
                f"Feed failing for {hours:.1f} h: {feed.label} ({feed.url}). "
                f"Last error: {feed.last_error or 'unknown'}"
            )
            _health_row(session, cfg.health_channel, feed, key, text, now, "down")
            outbox.set_health_alerted(session, feed.id, now)
            queued += 1
    return queued


def _recovered(feed: Feed, notice: Delivery) -> bool:
    """The feed's newest notice says "down" but that failing period is over."""
    payload = outbox.payload_of(notice)
    if not isinstance(payload, NoticePayload) or payload.state != "down":
        return False
    since = feed.failing_since.isoformat() if feed.failing_since else None
    return since != payload.failing_since


def _health_row(
    session: Session, channel: str, feed: Feed, key: str, notice: str, now: datetime, state: str
) -> None:
    since = feed.failing_since.isoformat() if feed.failing_since else None
    payload = NoticePayload(notice=notice, topic="feed health", state=state, failing_since=since)
    if not outbox.add_health_notice(
        session, channel=channel, feed_id=feed.id, key=key, payload=payload, now=now
    ):
        return
    event(
        log,
        logging.WARNING,
        "feed health alert queued",
        feed_id=feed.id,
        url=feed.url,
        state=state,
        notice=notice,
    )
