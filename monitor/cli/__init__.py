"""The ``monitor`` command line: a thin layer that turns errors into clear messages.

Each command group lives in its own module and registers itself on ``app`` here.

Errors reach the user in one of three ways, all from :func:`main`: a usage mistake (unknown
command or option, missing argument, bad value) as one line and exit 2; a MonitorError (bad
config, unknown feed, ...) as one line and exit 2; Ctrl-C as exit 130. typer (from 0.29)
bundles its own copy of click, so its usage errors are ``typer.TyperException`` subclasses,
not ``click.ClickException``: :func:`main` catches typer's classes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import typer

# typer >= 0.29 bundles click; these two have no public name (pinned in pyproject.toml)
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from monitor import __version__
from monitor.cli import common
from monitor.errors import MonitorError

app = typer.Typer(
    name="monitor",
    help="Watch RSS/Atom feeds and alert when new articles match the topics you follow.\n\n"
    "Example: monitor --config config.toml run",
    **common.APP_SETTINGS,
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
    log_format: Literal["keyvalue", "json"] | None = typer.Option(
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
    "tuning_cmd",
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
        code = app(prog_name="monitor", standalone_mode=False)
        # typer returns the code of typer.Exit instead of raising it when not standalone
        sys.exit(code if isinstance(code, int) else 0)
    except MonitorError as exc:
        _error(str(exc))
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except NoArgsIsHelpError as exc:
        # `monitor` or `monitor feeds` alone: the help is the useful answer
        typer.echo(exc.format_message())
        sys.exit(2)
    except typer.TyperException as exc:  # typer's usage errors (its bundled click)
        _error(usage_message(exc))
        sys.exit(exc.exit_code)


def usage_message(exc: typer.TyperException) -> str:
    """typer's error as one line, with where to find help (typer's own form takes 3 lines)."""
    message = " ".join(exc.format_message().split()).replace("Value error, ", "")
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, UsageError) and ctx is not None:
        message += f" (see `{ctx.command_path} --help`)"
    return message


def _error(message: str) -> None:
    """One ``error:`` line per problem (config problems come several at once)."""
    for line in message.splitlines() or [""]:
        typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
