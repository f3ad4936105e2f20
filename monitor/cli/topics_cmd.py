"""`monitor topics list` (matching adds `test` and `preview`)."""

from __future__ import annotations

import typer

from monitor.cli import common

topics_app = typer.Typer(help="Inspect and try out topics.", no_args_is_help=True)


@topics_app.command("list")
def list_(fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv.")) -> None:
    """Show configured topics with their threshold, seeds and channels.

    Example: monitor topics list
    """
    cfg = common.config()
    rows = [
        {
            "name": t.name,
            "threshold": t.threshold,
            "seeds": ", ".join(str(s) for s in t.seed),
            "require_groups": len(t.require),
            "channels": ", ".join(t.channels),
        }
        for t in cfg.topics
    ]
    common.print_rows(rows, ["name", "threshold", "require_groups", "channels", "seeds"], fmt)


def register(app: typer.Typer) -> None:
    app.add_typer(topics_app, name="topics")
