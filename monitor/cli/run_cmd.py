"""`monitor run`: the daemon, or one cycle with --once."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import typer

from monitor.cli import common
from monitor.logs import setup_logging

if TYPE_CHECKING:
    from monitor.pipeline.cycle import CycleReport
    from monitor.pipeline.runtime import Runtime


def run(
    once: bool = typer.Option(
        False, "--once", help="Run one cycle (poll, match, deliver) and exit."
    ),
    grace: float = typer.Option(
        "30s",
        "--grace",
        help='Time in-flight work may take after a stop signal: seconds or a duration like "1m".',
        parser=common.duration,
        metavar="DURATION",
    ),
) -> None:
    """Start the daemon: poll feeds, match articles to topics, deliver alerts.

    Upgrades the database schema first. Stop it with Ctrl-C or SIGTERM.

    Example: monitor --config config.toml run --once
    """
    from monitor.daemon import Daemon

    config = common.config()
    config.check_channels()  # the daemon sends on every enabled channel: all secrets now
    level = "DEBUG" if common.STATE.verbose else config.logging.level
    setup_logging(level, common.STATE.log_format or config.logging.format)
    with common.runtime() as rt:
        if once:
            report = _run_once_alone(rt)
            typer.echo(
                f"polled {report.poll.feeds_polled} feeds ({report.poll.feeds_failed} failed, "
                f"{report.poll.not_modified} unchanged), stored {report.poll.articles_stored} "
                f"articles, {report.match.matched} matches, {report.delivery.sent} alerts sent"
            )
            return
        daemon = Daemon(rt, grace_s=grace)
        daemon.install_signal_handlers()
        api_server = None
        if config.api.enabled:
            from monitor.api import check_bind, start_in_thread

            # refuse a public bind without a token before the daemon starts any work
            check_bind(config.api.host, config.api.token.get_secret_value())
            api_server = start_in_thread(rt)
        daemon.start()
        try:
            daemon.wait()
        finally:
            if api_server is not None:
                api_server.should_exit = True
            daemon.shutdown()
            daemon.exit_if_abandoned()
    logging.shutdown()


def _run_once_alone(rt: Runtime) -> CycleReport:
    """One cycle, holding the SQLite owner lock like a daemon does: a cycle beside a live
    daemon on the same file would claim its work (and a daemon started meanwhile is refused)."""
    from monitor.daemon import SqliteOwnerLock
    from monitor.pipeline import cycle

    lock = SqliteOwnerLock(rt.config.database_url)
    lock.acquire()
    try:
        return cycle.run_once(rt)
    finally:
        lock.release()


def register(app: typer.Typer) -> None:
    app.command("run")(run)
