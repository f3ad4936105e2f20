"""`monitor health`: exit 0 when a daemon ticked recently and the database answers.

Used by the Dockerfile's HEALTHCHECK and by monitoring scripts; no HTTP server needed.
"""

from __future__ import annotations

import typer

from monitor.cli import common
from monitor.store import db, queries


def health(
    max_age: float = typer.Option(
        "60s",
        "--max-age",
        help='Longest time since the last scheduler tick: seconds or a duration like "2m".',
        parser=common.duration,
        metavar="DURATION",
    ),
) -> None:
    """Check that a daemon's scheduler ticked within --max-age; exit 1 if not.

    Example: monitor health --max-age 120
    """
    cfg = common.config()
    with common.runtime(migrate=False, sync=False) as rt, db.session_scope(rt.sessions) as session:
        alive = queries.liveness(session, max_age)
    if not alive.healthy:
        typer.echo(f"unhealthy: no daemon ticked in the last {max_age:g}s ({cfg.path})")
        raise typer.Exit(1)
    typer.echo("healthy: " + ", ".join(alive.workers))


def register(app: typer.Typer) -> None:
    app.command("health")(health)
