"""Delivery stage: send due outbox rows through their channels, retry with backoff.

The outbox's other jobs live beside it: ``outbox.py`` queues a match's alerts and groups
stories, ``digests.py`` folds queued alerts into digests, ``health_alerts.py`` queues
feed-health notices, ``messages.py`` turns a row into the Message a channel sends. This module
claims, sends and retries.

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
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from monitor import metrics
from monitor.alert import Channel, make_channel
from monitor.alert.message import Message
from monitor.alert.schedule import quiet_until
from monitor.config import Config
from monitor.errors import DeliveryError, MonitorError, NotFoundError, PermanentDeliveryError
from monitor.logs import event
from monitor.pipeline.digests import build_digests
from monitor.pipeline.health_alerts import queue_health_alerts
from monitor.pipeline.messages import build_message, sample_message
from monitor.pipeline.runtime import Runtime
from monitor.redact import redact_text
from monitor.store import db, outbox
from monitor.store.models import Delivery

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
    now = runtime.clock.now()
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
    now = runtime.clock.now()
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
    now = runtime.clock.now()
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
    step = min(cap, base * float(2 ** max(0, attempts - 1)))
    delay = step / 2 + random.uniform(0, step / 2)
    return max(delay, retry_after or 0.0)


# -- test alerts ---------------------------------------------------------------------------


def send_test(config: Config, channel_name: str) -> None:
    """Send a test alert directly (not through the outbox); raises DeliveryError on failure."""
    channel_config = config.alerts.get(channel_name)
    if channel_config is None:
        defined = ", ".join(sorted(config.alerts))
        raise NotFoundError(f'no channel "{channel_name}" under [alerts] (defined: {defined})')
    channel = make_channel(channel_name, channel_config)
    channel.send(sample_message(channel_name), f"test-{channel_name}-{int(time.time())}")
