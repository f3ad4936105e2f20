"""The ``monitor`` command line: a thin layer that turns errors into clear messages.

Each command group lives in its own module and registers itself on ``app`` here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from monitor import __version__
from monitor.cli import common
from monitor.errors import MonitorError

app = typer.Typer(
    name="monitor",
    help="Watch RSS/Atom feeds and alert when new articles match the topics you follow.\n\n"
    "Example: monitor --config config.toml run",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"monitor {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        envvar="MONITOR_CONFIG",
        help="Config file (default ./config.toml). Relative paths inside it resolve against "
        "its folder.",
        show_default=False,
    ),
    log_format: str | None = typer.Option(
        None, "--log-format", help="Log lines as 'keyvalue' or 'json' (overrides config)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    common.STATE.config_path = config
    common.STATE.log_format = log_format
    common.STATE.verbose = verbose


# Command groups, one module each; each module's register(app) adds its commands.
COMMAND_MODULES = (
    "run_cmd",
    "config_cmd",
    "db_cmd",
    "feeds_cmd",
    "topics_cmd",
    "matching_cmd",
    "alerts_cmd",
    "query_cmd",
    "demo_cmd",
    "health_cmd",
    "exchange_cmd",  # adds topics feed-url, feeds import|export
)


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"monitor.cli.{name}").register(app)


_register()


def main() -> None:
    """Console-script entry point: user mistakes end in one line, never a traceback."""
    try:
        code = app(standalone_mode=False)
        # click returns the code of typer.Exit instead of raising it when not standalone
        sys.exit(code if isinstance(code, int) else 0)
    except MonitorError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
