"""Engines, sessions and migrations.

SQLite gets WAL, a busy timeout and foreign keys on every connection; PostgreSQL is reached
through psycopg 3. The schema only changes through Alembic: :func:`upgrade` runs the migrations
(``migrations/``, shipped as ``monitor._migrations``) programmatically, as ``monitor db upgrade``
and the daemon's start-up do.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Engine, create_engine, event, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from monitor.config import sqlite_path
from monitor.errors import DatabaseError

MIGRATIONS_PACKAGE = "monitor._migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def migrations_dir() -> Path:
    """Alembic's script folder: the copy shipped in the package as ``monitor._migrations``.

    pyproject.toml maps the repository's top-level ``migrations/`` to that package, so a wheel
    carries the migrations and an editable install finds the repository folder under the same
    name. ``$MONITOR_MIGRATIONS_DIR`` overrides both (migrations kept outside the package)."""
    override = os.environ.get("MONITOR_MIGRATIONS_DIR")
    if override:
        return Path(override)
    try:
        spec = importlib.util.find_spec(MIGRATIONS_PACKAGE)
    except ModuleNotFoundError:
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    if locations:
        return Path(locations[0])
    # a source checkout on sys.path without any install: the repository folder itself
    return Path(__file__).resolve().parent.parent.parent / "migrations"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, echo: bool = False, null_pool: bool = False) -> Engine:
    """Create an engine with the per-dialect settings monitor relies on.

    ``null_pool`` is for short-lived users (migrations, CLI one-shots) that must not keep
    connections open after they finish.
    """
    kwargs: dict[str, Any] = {"echo": echo}
    if null_pool:
        kwargs["poolclass"] = NullPool
    if is_sqlite(url):
        kwargs["connect_args"] = {
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            "check_same_thread": False,
        }
        _ensure_sqlite_file(url)
    elif not null_pool:
        kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
    try:
        engine = create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise DatabaseError(f"cannot use database URL {_redact(url)}: {exc}") from None
    if is_sqlite(url):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _ensure_sqlite_file(url: str) -> None:
    """Create the folder, and the database file readable by its owner only (0600): it holds
    the articles and the outbox's payloads. SQLite gives -wal and -shm the main file's mode.
    An existing file keeps the mode it has."""
    path = sqlite_path(url)
    if path is None:  # in memory
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _redact(url: str) -> str:
    """Hide a password in a URL before it reaches a message or a log."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


redact_url = _redact


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Any:
    """An Alembic Config pointing at the packaged migrations and the given database."""
    from alembic.config import Config as AlembicConfig

    # stdout given at call time: Alembic's default is the sys.stdout of when alembic.config was
    # first imported, which under pytest can be a capture buffer closed since
    cfg = AlembicConfig(stdout=sys.stdout)
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database schema up to date; safe to run on every start."""
    from alembic import command

    folder = migrations_dir()
    if not (folder / "env.py").is_file():
        raise DatabaseError(f"migrations folder not found at {folder}")
    try:
        command.upgrade(alembic_config(url), revision)
    except OperationalError as exc:
        raise DatabaseError(f"cannot migrate {_redact(url)}: {exc.orig}") from None
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot migrate {_redact(url)}: {exc}") from None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest schema revision this program ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def require_current_schema(engine: Engine) -> None:
    """Refuse, in one line, a database whose schema is not the one this program ships: read
    commands do not migrate (they must not change a database someone else runs)."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    where = engine.url.render_as_string(hide_password=True)
    if current is None:
        raise DatabaseError(f"{where} has no monitor schema yet: run `monitor db upgrade`")
    raise DatabaseError(
        f"{where} is at schema {current}, this monitor reads {head}: run `monitor db upgrade`"
    )


def lease(
    session: Session,
    key: Any,
    claimable: ColumnElement[bool],
    order_by: tuple[Any, ...],
    *,
    limit: int,
    owner: str,
    until: Any,
) -> list[int]:
    """Lease up to ``limit`` rows matching ``claimable`` to ``owner`` until ``until``; their ids.

    ``key`` is the id column of a table with ``lease_owner`` / ``lease_until`` columns. On
    PostgreSQL the rows are picked with ``FOR UPDATE SKIP LOCKED``, so two workers never lease
    one row; the UPDATE checks ``claimable`` again (SQLite has a single writer). Commit is the
    caller's.
    """
    query = select(key).where(claimable).order_by(*order_by).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(key.class_)
            .where(key.in_(ids), claimable)
            .values(lease_owner=owner, lease_until=until)
            .execution_options(synchronize_session=False)
        )
    return ids
