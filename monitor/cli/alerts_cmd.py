"""`monitor alerts test|list|dispatch|retry`: check channels and look into the outbox."""

from __future__ import annotations

import logging
from typing import Any

import typer

from monitor.cli import common
from monitor.domain import DeliveryStatus
from monitor.errors import DeliveryError, NotFoundError
from monitor.logs import setup_logging
from monitor.redact import redact_text
from monitor.store import db, outbox
from monitor.store.models import Delivery

alerts_app = common.sub_app("Test alert channels and inspect the outbox.")


@alerts_app.command("test")
def send_test_alert(
    channel: str = typer.Option(..., "--channel", "-C", help="Channel name from [alerts.<name>]."),
) -> None:
    """Send a test alert through one channel now; on failure say exactly what failed.

    Names the layer that failed (DNS, TCP, TLS, auth, HTTP status with body); exit code 1.

    Example: monitor alerts test --channel slack
    """
    from monitor.pipeline.delivery import send_test

    config = common.config()
    try:
        send_test(config, channel)
    except DeliveryError as exc:
        kind = "permanent" if type(exc).__name__.startswith("Permanent") else "temporary"
        reason = redact_text(str(exc))  # an error can quote the channel's URL
        raise common.fail(f'channel "{channel}" failed ({kind}): {reason}') from None
    typer.echo(f'test alert sent through channel "{channel}"')


def delivery_row(row: Delivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel": row.channel,
        "kind": row.kind,
        "status": row.status,
        "topic": outbox.topic_of(row),
        "match_id": row.match_id,
        "attempts": row.attempts,
        "next_attempt": row.next_attempt_at if row.status == outbox.PENDING else None,
        "sent_at": row.sent_at,
        "created_at": row.created_at,
        "last_error": row.last_error and redact_text(row.last_error),
        "key": row.idempotency_key,
    }


@alerts_app.command("list")
def list_(
    status: str | None = typer.Option(
        None, "--status", "-s", help=f"Only rows in this state: {', '.join(outbox.STATUSES)}."
    ),
    channel: str | None = typer.Option(None, "--channel", "-C", help="Only this channel."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10_000, help="Newest rows shown."),
    fmt: common.TableFormat = typer.Option("table", "--format", "-f", help="table, json or csv."),
) -> None:
    """Show the outbox, newest first: state, attempts, next retry and the last error.

    Example: monitor alerts list --status failed --format json
    """
    if status and status not in outbox.STATUSES:
        raise NotFoundError(f'unknown status "{status}" (one of: {", ".join(outbox.STATUSES)})')
    wanted = DeliveryStatus(status) if status else None
    with common.runtime() as rt, db.session_scope(rt.sessions) as session:
        rows = [
            delivery_row(r)
            for r in outbox.list_deliveries(session, status=wanted, channel=channel, limit=limit)
        ]
    columns = ["id", "channel", "kind", "status", "topic", "attempts", "next_attempt", "sent_at"]
    columns += ["last_error"] if fmt == "table" else ["match_id", "created_at", "last_error", "key"]
    common.print_rows(rows, columns, fmt)


@alerts_app.command("dispatch")
def dispatch() -> None:
    """Send every due alert once and exit (what the daemon does every tick; for cron users).

    Example: monitor alerts dispatch
    """
    from monitor.pipeline.delivery import dispatch_due

    config = common.config()
    config.check_channels()
    level = "DEBUG" if common.STATE.verbose else config.logging.level
    setup_logging(level, common.STATE.log_format or config.logging.format)
    with common.runtime() as rt:
        report = dispatch_due(rt)
    typer.echo(
        f"sent {report.sent}, will retry {report.retried}, failed {report.failed}, "
        f"digests queued {report.digests}, health notices {report.health}"
    )
    logging.shutdown()


@alerts_app.command("retry")
def retry(
    delivery_id: int = typer.Argument(
        ...,
        help="Outbox row id (see `alerts list`).",
        parser=common.database_id,
        metavar="DELIVERY_ID",
    ),
) -> None:
    """Queue a failed delivery again, now, with the same idempotency key.

    Example: monitor alerts retry 42
    """
    from datetime import UTC, datetime

    with common.runtime() as rt, db.session_scope(rt.sessions) as session:
        row = outbox.requeue_failed(session, delivery_id, datetime.now(UTC))
        if row is None:
            raise NotFoundError(f"no delivery {delivery_id} (see `monitor alerts list`)")
        if row.status != outbox.PENDING:
            raise NotFoundError(f"delivery {delivery_id} is {row.status}, not failed")
        typer.echo(f"delivery {delivery_id} queued again")


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
