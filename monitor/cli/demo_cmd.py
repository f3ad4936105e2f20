"""`monitor demo`: see the whole product work on sample feeds, offline, in under two minutes."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from monitor.cli import common
from monitor.errors import MonitorError
from monitor.logs import setup_logging


def demo(
    keep: Path | None = typer.Option(
        None,
        "--keep",
        help="Keep the demo database and config in "
        "this folder (to try `monitor --config F/config.toml "
        "matches` afterwards).",
    ),
) -> None:
    """See the whole product work on sample feeds, offline, in under two minutes.

    Serves a few sample feeds on 127.0.0.1, runs the pipeline on them with a temporary
    database and prints the alerts it raises. Needs no internet and no config file.

    Example: monitor demo
    """
    from monitor.demo import run_demo

    setup_logging(
        "DEBUG" if common.STATE.verbose else "WARNING", common.STATE.log_format or "keyvalue"
    )
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    found = run_demo(typer.echo, keep=keep.resolve() if keep else None)
    logging.shutdown()
    if not found:
        raise MonitorError(
            "the demo found no matches: are the polling and matching stages "
            "installed? (run with -v to see the pipeline's log)"
        )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
