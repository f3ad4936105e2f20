"""The matches page's queries are index range scans, not table scans and sorts: the plan of
list_matches for the page's orders names the index (SQLite's EXPLAIN QUERY PLAN, and on
PostgreSQL EXPLAIN with scans, sorts and merge/hash joins discouraged, as on a large table)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from monitor.config import load_config
from monitor.pipeline.runtime import open_runtime
from monitor.store import db, read_models
from tests.query.conftest import config_text
from tests.query.data import populate


def _plan(session: Session, flt: read_models.MatchFilter, dialect: str) -> str:
    """The plan of the statement list_matches runs, captured from the engine."""
    captured: list[tuple[str, dict]] = []
    from sqlalchemy import event

    def grab(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if "FROM matches" in statement and "ORDER BY" in statement:
            captured.append((statement, parameters))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", grab)
    try:
        read_models.list_matches(session, flt)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    statement, parameters = captured[-1]
    conn = session.connection().connection.driver_connection
    cursor = conn.cursor()
    if dialect == "sqlite":
        cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())
    # a 15-row table is cheaper to scan and sort; these settings ask the planner what it would
    # do when that is expensive (a large table): walk an index in the page's order
    for setting in ("enable_seqscan", "enable_sort", "enable_mergejoin", "enable_hashjoin"):
        cursor.execute(f"SET {setting} = off")
    cursor.execute("EXPLAIN " + statement, parameters)
    return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    ("flt", "index"),
    [
        (read_models.MatchFilter(topic="alliance"), "ix_matches_topic_id_published_at"),
        (read_models.MatchFilter(), "ix_matches_published_at"),
        (read_models.MatchFilter(topic="alliance", sort="score"), "ix_matches_topic_id_score"),
        (read_models.MatchFilter(sort="score", min_score=0.4), "ix_matches_score"),
    ],
)
def test_matches_page_orders_use_an_index(db_url, tmp_path, flt, index) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(db_url), encoding="utf-8")
    runtime = open_runtime(load_config(path, environ={}))
    try:
        with db.session_scope(runtime.sessions) as s:
            populate(s)
        with db.session_scope(runtime.sessions) as s:
            if runtime.engine.dialect.name == "postgresql":
                s.execute(text("ANALYZE"))
            plan = _plan(s, flt, runtime.engine.dialect.name)
    finally:
        runtime.close()
    assert index in plan, plan
    assert "TEMP B-TREE FOR ORDER BY" not in plan  # SQLite: no sort of the whole result
