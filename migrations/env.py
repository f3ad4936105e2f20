"""Alembic environment: migrations run against monitor's models and the configured database."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import event

from monitor.store.db import make_engine
from monitor.store.models import Base

target_metadata = Base.metadata


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Write UTCDateTime as a plain DateTime so migrations never import monitor's models."""
    if type_ == "type" and obj.__class__.__name__ == "UTCDateTime":
        return "sa.DateTime()"
    return False


def _database_url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if url:
        return url
    if os.environ.get("MONITOR_DATABASE_URL"):
        return os.environ["MONITOR_DATABASE_URL"]
    from monitor.config import load_config

    return load_config().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _sqlite_foreign_keys_off(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


def run_migrations_online() -> None:
    engine = make_engine(_database_url(), null_pool=True)
    if engine.dialect.name == "sqlite":
        # A batch migration on SQLite copies a table and drops the old one ("move and copy"):
        # with foreign keys on, dropping the old articles table cascaded to every match and
        # vector. Runs after make_engine's own connect hook, which turns them on.
        event.listen(engine, "connect", _sqlite_foreign_keys_off)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            render_item=_render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
