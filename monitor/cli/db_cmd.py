"""`monitor db upgrade|current`."""

from __future__ import annotations

import typer

from monitor.cli import common
from monitor.store import db

db_app = common.sub_app("Database schema management (Alembic migrations).")


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: the newest). The daemon also does this on start.

    Example: monitor db upgrade
    """
    cfg = common.config()
    db.upgrade(cfg.database_url, revision)
    engine = db.make_engine(cfg.database_url, null_pool=True)
    try:
        typer.echo(
            f"database {db.redact_url(cfg.database_url)} is at revision {db.current_revision(engine)}"
        )
    finally:
        engine.dispose()


@db_app.command("current")
def current() -> None:
    """Print the schema revision the database is at.

    Example: monitor db current
    """
    cfg = common.config()
    engine = db.make_engine(cfg.database_url, null_pool=True)
    try:
        typer.echo(db.current_revision(engine) or "(empty database: run `monitor db upgrade`)")
    finally:
        engine.dispose()


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
