"""`monitor run`: the daemon, or one cycle with --once."""

from __future__ import annotations

import logging

import typer

from monitor.cli import common
from monitor.logs import setup_logging


def run(
    once: bool = typer.Option(
        False, "--once", help="Run one cycle (poll, match, deliver) and exit."
    ),
    grace: float = typer.Option(
        30.0, "--grace", help="Seconds in-flight work may take after a stop signal."
    ),
) -> None:
    """Start the daemon: poll feeds, match articles to topics, deliver alerts.

    Upgrades the database schema first. Stop it with Ctrl-C or SIGTERM.

    Example: monitor --config config.toml run --once
    """
    from monitor.daemon import Daemon
    from monitor.pipeline import cycle

    config = common.config()
    level = "DEBUG" if common.STATE.verbose else config.logging.level
    setup_logging(level, common.STATE.log_format or config.logging.format)
    with common.runtime() as rt:
        if once:
            report = cycle.run_once(rt)
            typer.echo(
                f"polled {report.poll.feeds_polled} feeds ({report.poll.feeds_failed} failed, "
                f"{report.poll.not_modified} unchanged), stored {report.poll.articles_stored} "
                f"articles, {report.match.matched} matches, {report.delivery.sent} alerts sent"
            )
            return
        daemon = Daemon(rt, grace_s=grace)
        daemon.install_signal_handlers()
        daemon.start()
        try:
            daemon.wait()
        finally:
            daemon.shutdown()
    logging.shutdown()


def register(app: typer.Typer) -> None:
    app.command("run")(run)
