"""What every command shares: the chosen config file, loading it, opening the database, and
turning MonitorError into one clear line and a non-zero exit code."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from monitor.config import Config, config_path_from_env, load_config
from monitor.pipeline.runtime import Runtime, open_runtime


@dataclass
class CliState:
    config_path: Path | None = None
    log_format: str | None = None
    verbose: bool = False


STATE = CliState()


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
        return value.strftime("%Y-%m-%d %H:%M")
    return " ".join(str(value).split())


def _fit(value: str, width: int) -> str:
    return value.ljust(width) if len(value) <= width else value[: width - 1] + "…"
