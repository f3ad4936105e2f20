"""Delivery stage: send due outbox rows through their channels, retry with backoff.

Exactly-once story (what happens at each point a process can die)::

    enqueue   match + delivery rows commit together        -> no alert without its delivery
    claim     lease_owner, lease_until on a batch           -> committed
    begin     status=sending, fresh lease                   -> committed BEFORE the network call
    send      channel.send(message, idempotency_key)
    finish    attempt row + status=sent|pending|failed      -> committed right after the call

- Killed before ``begin`` commits: the row is still ``pending`` (perhaps leased: the lease
  runs out); it is sent later, once.
- Killed after ``begin``, during the send, or after the send but before ``finish``
  commits: the row stays ``sending`` with a lease in the past once ``database.lease`` runs out.
  The next dispatch (any worker) takes it again, records the interrupted attempt, and sends it
  again **with the same idempotency key** (``Idempotency-Key`` header for Slack and webhooks,
  the same ``Message-ID`` for email). So delivery is at-least-once from our side, and
  exactly-once wherever the receiver dedupes by that key (our webhook contract asks receivers
  to). The duplicate window is only the few milliseconds between the server's answer and our
  commit; Slack's incoming webhooks do not dedupe, so a kill exactly there can show one
  duplicate in Slack.
- A digest too long for one message of its channel (Slack: 50 blocks) is queued as several
  rows, one per part, with keys ``<digest key>``, ``<digest key>-part2``, ... all committed in
  one transaction. Each part is claimed, sent, retried and recovered alone like any row, so a
  failure or a kill during part 3 resends part 3 only, never parts 1 and 2; the parts go out
  in order because a channel's rows are sent by id and a part waiting for a retry holds back
  the later ones.
- Two workers never own one row: claiming is a compare-and-set on the row (and
  ``FOR UPDATE SKIP LOCKED`` on PostgreSQL); the lease is renewed just before each send.

Failures are retried with exponential backoff and jitter (``delivery.retry_base`` doubling up to
``delivery.retry_cap``, never sooner than a ``Retry-After``), until ``delivery.give_up_after``
has passed since the alert was queued; then the row is ``failed`` and an ERROR line is logged.
While a channel's oldest alert waits for a retry, newer alerts of that channel wait too, so a
channel receives alerts in order (per worker; several PostgreSQL workers may interleave).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from monitor import metrics, signing
from monitor.alert import Channel, make_channel, render
from monitor.alert.message import (
    Alert,
    Judgement,
    Message,
    Part,
    feedback_command,
    http_link,
    lead_of,
)
from monitor.alert.schedule import digest_slot, quiet_until
from monitor.config import Config
from monitor.errors import DeliveryError, MonitorError, NotFoundError, PermanentDeliveryError
from monitor.logs import event
from monitor.pipeline import clock
from monitor.pipeline.runtime import Runtime
from monitor.redact import redact_text
from monitor.store import db, outbox
from monitor.store.models import Article, Delivery, Feed, Match, Topic
from monitor.store.read_models import explanation_aliases

log = logging.getLogger(__name__)

BATCH = 20


@dataclass
class DispatchReport:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    digests: int = 0
    health: int = 0


def dispatch_due(runtime: Runtime) -> DispatchReport:
    """Build due digests and health notices, then send every due delivery, oldest first."""
    report = DispatchReport()
    try:
        report.digests = build_digests(runtime)
        report.health = queue_health_alerts(runtime)
    except SQLAlchemyError as exc:
        event(log, logging.ERROR, "outbox bookkeeping failed", error=str(exc))
    channels: dict[str, Channel] = {}
    blocked: set[str] = set()
    while not runtime.stop.is_set():
        try:
            claimed = _claim(runtime, blocked)
        except SQLAlchemyError as exc:
            event(log, logging.ERROR, "cannot claim deliveries", error=str(exc))
            break
        if not claimed:
            break
        for index, delivery_id in enumerate(claimed):
            if runtime.stop.is_set():
                _release(runtime, claimed[index:])
                return report
            try:
                outcome = _deliver(runtime, delivery_id, channels, blocked)
            except SQLAlchemyError as exc:  # database trouble: the lease expires, row is retried
                event(
                    log,
                    logging.ERROR,
                    "delivery bookkeeping failed",
                    delivery_id=delivery_id,
                    error=str(exc),
                )
                return report
            if outcome == "sent":
                report.sent += 1
            elif outcome == "failed":
                report.failed += 1
            elif outcome == "retry":
                report.retried += 1
    return report


# -- claiming -------------------------------------------------------------------------------


def _lease_until(runtime: Runtime, now: datetime, channel: str | None = None) -> datetime:
    """The lease end; for a send, long enough that the send's own time limit runs out first
    (a lease expiring mid-send would let another worker send the same alert again)."""
    seconds = runtime.config.database.lease
    channel_config = runtime.config.alerts.get(channel) if channel else None
    if channel_config is not None:
        seconds = max(seconds, 2 * channel_config.timeout + 5)
    return now + timedelta(seconds=seconds)


def quiet_channels(config: Config, now: datetime) -> set[str]:
    return {
        name
        for name, ch in config.alerts.items()
        if ch.quiet_hours and quiet_until(now, ch.quiet_hours, ch.timezone) is not None
    }


def _claim(runtime: Runtime, blocked: set[str]) -> list[int]:
    now = clock.now(runtime)
    with db.session_scope(runtime.sessions) as session:
        skip = quiet_channels(runtime.config, now) | blocked
        skip |= outbox.retrying_channels(session, now)
        return outbox.claim_due(
            session,
            worker=runtime.worker_id,
            now=now,
            lease_until=_lease_until(runtime, now),
            limit=BATCH,
            skip_channels=skip,
        )


def _release(runtime: Runtime, ids: list[int]) -> None:
    with db.session_scope(runtime.sessions) as session:
        outbox.release(session, ids, worker=runtime.worker_id)


# -- one send -------------------------------------------------------------------------------


def _deliver(
    runtime: Runtime, delivery_id: int, channels: dict[str, Channel], blocked: set[str]
) -> str:
    """Send one claimed row; returns "sent", "retry", "failed" or "skipped"."""
    now = clock.now(runtime)
    with db.session_scope(runtime.sessions) as session:
        row = session.get(Delivery, delivery_id)
        if row is None:
            return "skipped"
        if row.channel in blocked:
            outbox.release(session, [delivery_id], worker=runtime.worker_id)
            return "skipped"
        if not outbox.begin_send(
            session,
            delivery_id,
            worker=runtime.worker_id,
            lease_until=_lease_until(runtime, now, row.channel),
        ):
            return "skipped"  # another worker took it after our lease ran out
        key, channel_name, created_at = row.idempotency_key, row.channel, row.created_at
        message: Message | None = None
        channel: Channel | None = None
        error: DeliveryError | None = None
        try:
            message = build_message(session, runtime.config, row)
            channel = _channel(runtime, channel_name, channels)
        except MonitorError as exc:  # e.g. the match was deleted, the channel removed
            error = PermanentDeliveryError(str(exc))
    # the "sending" state and the renewed lease are committed before the network call
    started = time.monotonic()
    if message is not None and channel is not None:
        error = _send(channel, message, key)
    return _finish(runtime, delivery_id, channel_name, key, created_at, started, error, blocked)


def _channel(runtime: Runtime, name: str, cache: dict[str, Channel]) -> Channel:
    if name not in cache:
        config = runtime.config.alerts.get(name)
        if config is None or not config.enabled:
            raise PermanentDeliveryError(f'channel "{name}" is no longer configured or enabled')
        cache[name] = make_channel(name, config)
    return cache[name]


def _send(channel: Channel, message: Message, key: str) -> DeliveryError | None:
    try:
        with metrics.DELIVER_SECONDS.time():
            channel.send(message, key)
    except DeliveryError as exc:
        return exc
    except Exception as exc:  # a channel bug must not kill the loop; the row keeps the error
        log.exception("channel raised an unexpected error", extra={"fields": {"key": key}})
        return DeliveryError(f"{type(exc).__name__}: {exc}")
    return None


def _finish(
    runtime: Runtime,
    delivery_id: int,
    channel: str,
    key: str,
    created_at: datetime,
    started: float,
    error: DeliveryError | None,
    blocked: set[str],
) -> str:
    now = clock.now(runtime)
    took = time.monotonic() - started
    with db.session_scope(runtime.sessions) as session:
        if error is None:
            outbox.record_sent(session, delivery_id, now=now, duration_s=took)
            attempts = session.get(Delivery, delivery_id)
            event(
                log,
                logging.INFO,
                "alert sent",
                delivery_id=delivery_id,
                channel=channel,
                key=key,
                attempts=attempts.attempts if attempts else None,
                took_s=round(took, 3),
            )
            return "sent"
        retry_at = _retry_at(runtime, session, delivery_id, now, created_at, error)
        # the row's last_error is shown by `alerts list`, `show` and the API: no URL secrets
        reason = redact_text(str(error))
        outbox.record_failure(
            session, delivery_id, now=now, error=reason, duration_s=took, retry_at=retry_at
        )
    if retry_at is None:
        event(
            log,
            logging.ERROR,
            "ALERT DELIVERY FAILED FOR GOOD: giving up",
            delivery_id=delivery_id,
            channel=channel,
            key=key,
            error=reason,
            reason="permanent error"
            if isinstance(error, PermanentDeliveryError)
            else "give_up_after passed",
        )
        return "failed"
    blocked.add(channel)
    event(
        log,
        logging.WARNING,
        "alert delivery failed; will retry",
        delivery_id=delivery_id,
        channel=channel,
        key=key,
        error=reason,
        retry_at=retry_at.isoformat(),
    )
    return "retry"


def _retry_at(
    runtime: Runtime,
    session: Session,
    delivery_id: int,
    now: datetime,
    created_at: datetime,
    error: DeliveryError,
) -> datetime | None:
    cfg = runtime.config.delivery
    if isinstance(error, PermanentDeliveryError):
        return None
    if (now - created_at).total_seconds() >= cfg.give_up_after:
        return None
    row = session.get(Delivery, delivery_id)
    attempts = (row.attempts if row else 0) + 1
    return now + timedelta(
        seconds=retry_delay(attempts, cfg.retry_base, cfg.retry_cap, error.retry_after_s)
    )


def retry_delay(attempts: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random; never sooner
    than the server's Retry-After."""
    step = min(cap, base * 2 ** max(0, attempts - 1))
    delay = step / 2 + random.uniform(0, step / 2)
    return max(delay, retry_after or 0.0)


# -- rows -> messages -----------------------------------------------------------------------


def build_message(session: Session, config: Config, row: Delivery) -> Message:
    """Turn an outbox row into the plain Message a channel sends (rendered at send time, so a
    digest shows every outlet that reported the story by then)."""
    payload = row.payload or {}
    if row.kind == "health" or row.kind == "test":
        return Message(
            kind="health" if row.kind == "health" else "test",
            topic=payload.get("topic", ""),
            notice=payload.get("notice", ""),
            created_at=row.created_at,
        )
    if row.kind == "digest":
        members = [session.get(Delivery, i) for i in payload.get("members", [])]
        alerts = tuple(
            a
            for m in members
            if m is not None
            for a in [_alert_for(session, config, m.match_id, m.payload or {})]
            if a
        )
        topic = payload.get("topic", "")
        return Message(
            kind="digest",
            topic=topic,
            alerts=alerts,
            recipients=_recipients(config, topic),
            created_at=row.created_at,
            part=_digest_part(payload),
        )
    alert = _alert_for(session, config, row.match_id, payload)
    if alert is None:
        raise PermanentDeliveryError(f"match {row.match_id} of this alert no longer exists")
    return Message(
        kind="alert",
        topic=alert.topic,
        alerts=(alert,),
        recipients=_recipients(config, alert.topic),
        created_at=row.created_at,
    )


def _digest_part(payload: dict[str, object]) -> Part | None:
    """Which part of a split digest this row is (None for a digest sent whole)."""
    index, count, total = payload.get("part"), payload.get("parts"), payload.get("total")
    if not isinstance(index, int) or not isinstance(count, int) or count < 2:
        return None
    return Part(index, count, total if isinstance(total, int) else 0)


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
    session: Session, config: Config, match_id: int | None, payload: dict[str, object]
) -> Alert | None:
    match = session.get(Match, match_id) if match_id is not None else None
    if match is None:
        return None
    article = session.get(Article, match.article_id)
    topic = session.get(Topic, match.topic_id)
    if article is None or topic is None:
        return None
    feed = session.get(Feed, article.feed_id)
    source = (feed.name or feed.title or feed.url) if feed else ""
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
        is_story_update=bool(payload.get("story_update")),
        match_id=match.id,
        article_id=article.id,
        story_id=match.story_id,
        lead=lead_of(article.summary or ""),
        aliases=tuple(explanation_aliases(explanation)),
        semantic=match.semantic_score,
        passage_source=str(explanation.get("passage_source", "") or ""),
        judgements=judgements(config, match.id),
    )


# -- digests --------------------------------------------------------------------------------


def build_digests(runtime: Runtime) -> int:
    """Fold alerts queued before each channel's latest digest slot into one digest per topic."""
    now = clock.now(runtime)
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
        topics = sorted({(r.payload or {}).get("topic", "") for r in rows})
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
                    if (r.payload or {}).get("topic", "") == topic
                ]
                if not members:
                    continue
                for member in members:
                    member.status = outbox.DIGESTED
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
    for number, chunk in enumerate(chunks, start=1):
        payload: dict[str, object] = {
            "topic": topic,
            "slot": slot.isoformat(),
            "members": [m.id for m in chunk],
        }
        if len(chunks) > 1:
            payload |= {"part": number, "parts": len(chunks), "total": len(members)}
        session.add(
            Delivery(
                channel=channel,
                kind="digest",
                status=outbox.PENDING,
                idempotency_key=key if number == 1 else f"{key}-part{number}",
                created_at=now,
                next_attempt_at=now,
                payload=payload,
            )
        )
        session.flush()  # ids in part order: a channel's rows are sent by id
    return len(chunks)


# -- feed health ----------------------------------------------------------------------------


def queue_health_alerts(runtime: Runtime) -> int:
    """Tell the operator channel once when a feed has failed for ``health_after``, once when it
    recovers. Polling keeps ``Feed.failing_since``; the notices already queued (one "down" per
    failing period, keyed by its start) say what was reported."""
    cfg = runtime.config.delivery
    if not cfg.health_channel or cfg.health_channel not in runtime.config.enabled_channels():
        return 0
    now = clock.now(runtime)
    queued = 0
    with db.session_scope(runtime.sessions) as session:
        latest = outbox.latest_health_notices(session)
        for feed_id, notice in latest.items():
            feed = session.get(Feed, feed_id)
            if feed is not None and _recovered(feed, notice):
                text = f"Feed recovered: {_feed_label(feed)} ({feed.url})."
                _health_row(
                    session,
                    cfg.health_channel,
                    feed,
                    notice.idempotency_key.replace("-down-", "-up-"),
                    text,
                    now,
                    "up",
                )
                feed.health_alerted_at = None
                queued += 1
        for feed in outbox.feeds_failing_since(session, now - timedelta(seconds=cfg.health_after)):
            assert feed.failing_since is not None
            key = f"health-{feed.id}-down-{feed.failing_since:%Y%m%dT%H%M%S}"
            if outbox.key_exists(session, key):
                continue
            hours = (now - feed.failing_since).total_seconds() / 3600
            text = (
                f"Feed failing for {hours:.1f} h: {_feed_label(feed)} ({feed.url}). "
                f"Last error: {feed.last_error or 'unknown'}"
            )
            _health_row(session, cfg.health_channel, feed, key, text, now, "down")
            feed.health_alerted_at = now
            queued += 1
    return queued


def _recovered(feed: Feed, notice: Delivery) -> bool:
    """The feed's newest notice says "down" but that failing period is over."""
    payload = notice.payload or {}
    if payload.get("state") != "down":
        return False
    since = feed.failing_since.isoformat() if feed.failing_since else None
    return since != payload.get("failing_since")


def _feed_label(feed: Feed) -> str:
    return feed.name or feed.title or feed.url


def _health_row(
    session: Session, channel: str, feed: Feed, key: str, notice: str, now: datetime, state: str
) -> None:
    if outbox.key_exists(session, key):
        return
    since = feed.failing_since.isoformat() if feed.failing_since else None
    session.add(
        Delivery(
            channel=channel,
            feed_id=feed.id,
            kind="health",
            idempotency_key=key,
            payload={
                "notice": notice,
                "topic": "feed health",
                "state": state,
                "failing_since": since,
            },
            created_at=now,
            next_attempt_at=now,
        )
    )
    session.flush()
    event(
        log,
        logging.WARNING,
        "feed health alert queued",
        feed_id=feed.id,
        url=feed.url,
        state=state,
        notice=notice,
    )


# -- test alerts ----------------------------------------------------------------------------


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
        kind="alert",
        topic="test",
        alerts=(alert,),
        created_at=alert.published_at,
        extra={"channel": channel},
    )


def send_test(config: Config, channel_name: str) -> None:
    """Send a test alert directly (not through the outbox); raises DeliveryError on failure."""
    channel_config = config.alerts.get(channel_name)
    if channel_config is None:
        defined = ", ".join(sorted(config.alerts))
        raise NotFoundError(f'no channel "{channel_name}" under [alerts] (defined: {defined})')
    channel = make_channel(channel_name, channel_config)
    channel.send(sample_message(channel_name), f"test-{channel_name}-{int(time.time())}")
