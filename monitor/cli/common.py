"""What every command shares: the chosen config file, loading it, opening the database,
option types that check values while the command line is parsed, and turning MonitorError
into one clear line and a non-zero exit code.

Option values are checked by typer ``parser=`` functions below: a ``ValueError`` they raise
becomes typer's usage error, which :func:`monitor.cli.main` prints as one line (exit 2) before
the command body, the config file or the database is touched.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import typer

from monitor.config import Config, config_path_from_env, load_config, parse_duration
from monitor.pipeline.runtime import Runtime, open_runtime
from monitor.store import db


@dataclass
class CliState:
    config_path: Path | None = None
    log_format: str | None = None
    verbose: bool = False


STATE = CliState()

# Database ids are signed 64-bit integers in SQLite and PostgreSQL alike; a larger number is
# refused here rather than overflowing the driver.
MAX_ID = 2**63 - 1

TableFormat = Literal["table", "json", "csv"]
ReportFormat = Literal["table", "json"]

# Help texts are plain text: square brackets (``[alerts.<name>]``) are shown as written.
APP_SETTINGS: dict[str, Any] = {
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}


def sub_app(help_text: str) -> typer.Typer:
    """A command group with the same settings as the root app (plain help, -h)."""
    return typer.Typer(help=help_text, **APP_SETTINGS)


def duration(value: str | float) -> float:
    """typer parser: ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` or plain seconds -> seconds.

    Bounded so that ``now - duration`` is always a valid date (``99999999d`` is refused).
    """
    text = str(value).strip()
    seconds = parse_duration(float(text) if _is_number(text) else text)
    if seconds > MAX_DURATION_S:
        raise ValueError(f'"{text}" is too long (at most {MAX_DURATION_S // 86400:.0f}d)')
    return seconds


# 100 years: far enough back for any archive, near enough to stay a valid datetime.
MAX_DURATION_S = 100 * 365 * 86400.0


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def database_id(value: str | int) -> int:
    """typer parser: a positive 64-bit id (the ids `matches`, `alerts list` and `show` print)."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f'expected a number like 42, got "{value}"')
    number = int(text)
    if not 1 <= number <= MAX_ID:
        raise ValueError(f"{text} is not an id (ids run from 1 to {MAX_ID})")
    return number


def feed_key(value: str) -> str:
    """typer parser: a feed id, URL or name; an all-digit key must be a valid id."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        database_id(text)
    return text


def match_id(value: str | int) -> int:
    """typer parser: a match id as `matches` prints it (42) or as `show` takes it (m42)."""
    text = str(value).strip()
    if text[:1] in ("m", "M"):
        text = text[1:]
    try:
        return database_id(text)
    except ValueError:
        raise ValueError(f'expected a match id like 42 or m42, got "{value}"') from None


def config() -> Config:
    """Load the config selected by --config / $MONITOR_CONFIG / ./config.toml."""
    return load_config(config_path_from_env(STATE.config_path))


@contextlib.contextmanager
def runtime(*, migrate: bool = True, sync: bool = True) -> Iterator[Runtime]:
    rt = open_runtime(config(), migrate=migrate, sync=sync)
    try:
        yield rt
    finally:
        rt.close()


@contextlib.contextmanager
def read_runtime() -> Iterator[Runtime]:
    """A runtime for commands that only read (`matches`, `search`, `show`): no migration and no
    config sync, so looking things up never changes the database a daemon runs on."""
    rt = open_runtime(config(), migrate=False, sync=False)
    try:
        db.require_current_schema(rt.engine)
        yield rt
    finally:
        rt.close()


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def print_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str = "table") -> None:
    """Print rows as an aligned table, JSON (one array) or CSV."""
    if fmt == "json":
        typer.echo(json.dumps(list(rows), ensure_ascii=False, default=str, indent=2))
        return
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
        sys.stdout.write(buffer.getvalue())
        return
    if not rows:
        typer.echo("(none)")
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [min(60, max(len(c), *(len(row[i]) for row in cells))) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        typer.echo("  ".join(_fit(v, w) for v, w in zip(row, widths, strict=True)).rstrip())


# a spreadsheet runs a cell starting with one of these as a formula (=HYPERLINK(...), +cmd|...)
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV value a spreadsheet shows as text: feed titles are untrusted, so a text starting
    with a formula character gets a leading single quote (OWASP's advice). Numbers are data
    and stay as they are (a score of -0.25 is not a formula)."""
    if isinstance(value, str) and value.lstrip(" ").startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M"))
    return " ".join(str(value).split())


def _fit(value: str, width: int) -> str:
    return value.ljust(width) if len(value) <= width else value[: width - 1] + "…"
