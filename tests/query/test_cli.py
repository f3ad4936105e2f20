"""`monitor matches|show|search` as a user runs them: a subprocess on a real database."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.store import db
from tests.query.data import HOSTILE_TITLE, NOW, store_real_vectors


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def cli(env, capsys, monkeypatch):
    """The CLI's real entry point (``monitor.cli.main``) in-process: no interpreter start-up."""
    from monitor.cli import main

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setattr(sys, "argv", ["monitor", "--config", str(env.config_path), *args])
        capsys.readouterr()
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def test_matches_table_is_readable(env) -> None:
    result = monitor(env.config_path, "matches", "--topic", "alliance", "--limit", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "MATCH_ID",
        "ARTICLE_ID",
        "PUBLISHED",
        "TOPIC",
        "SCORE",
        "SOURCE",
        "TITLE",
    ]
    assert len(lines) == 4
    assert "0.900" in lines[1]
    assert "North Korean troops story 0" in lines[2]
    assert result.stderr.startswith("more: --cursor ")


def test_matches_json_and_csv_parse_and_page(cli) -> None:
    first = cli("matches", "--limit", "10", "--format", "json")
    rows = json.loads(first.stdout)
    assert len(rows) == 10
    assert rows[0]["title"] == HOSTILE_TITLE
    cursor = first.stderr.split("--cursor ", 1)[1].strip()
    rest = json.loads(
        cli("matches", "--limit", "10", "--format", "json", "--cursor", cursor).stdout
    )
    assert len(rest) == 5
    assert not {r["match_id"] for r in rest} & {r["match_id"] for r in rows}
    out = cli("matches", "--topic", "sanctions", "--since", "7d", "--format", "csv").stdout
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert [r["title"] for r in parsed] == ["Sanctions on shipping firms 0"]
    assert float(parsed[0]["score"]) == pytest.approx(0.6)


def test_matches_filters_by_feed_score_and_until(cli) -> None:
    out = cli(
        "matches",
        "--feed",
        "Berita Dunia",
        "--min-score",
        "0.45",
        "--until",
        (NOW - timedelta(hours=2)).isoformat(),
        "--format",
        "json",
    ).stdout
    rows = json.loads(out)
    assert rows
    assert all(r["source"] == "Berita Dunia" and r["score"] >= 0.45 for r in rows)


def test_user_errors_are_one_line(env, cli) -> None:
    result = monitor(env.config_path, "matches", "--topic", "nope")  # the real process
    assert result.returncode == 2
    assert "no topic 'nope'" in result.stderr
    assert "Traceback" not in result.stderr
    for args, text in (
        (["matches", "--since", "soon"], "--since"),
        (["matches", "--format", "xml"], "--format"),
        (["show", "m999"], "no match 999"),
    ):
        result = cli(*args)
        assert result.returncode == 2, result.stderr
        assert text in result.stderr
        assert "Traceback" not in result.stderr


def test_show_prints_matches_story_and_deliveries(env, cli) -> None:
    result = cli("show", f"m{env.seeded.matches[0]}")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "North Korean troops story 0" in text
    assert "topic alliance" in text
    assert 'because:  "Seed passage 0 about troops"' in text
    assert "story 1: Troops story (2 articles)" in text
    assert "email pending (2 attempts)  error: SMTP 451 try later" in text
    as_json = json.loads(cli("show", f"a{env.seeded.articles[0]}", "--format", "json").stdout)
    assert as_json["matches"][0]["deliveries"][0]["status"] == "sent"


def test_search_filters_in_process(env, embedder) -> None:
    from monitor.search import search_articles

    texts = store_real_vectors(env.runtime.sessions, embedder)
    env.runtime.resources.embedder = embedder
    rows = search_articles(env.runtime, "troops sent to Russia", limit=10, min_score=-1.0)
    assert len(rows) == 4  # only this model's vectors are searched, not "test-model"'s
    assert rows[0]["title"].startswith("North Korea sends")
    assert rows[0]["similarity"] > 0.4
    assert rows[-1]["similarity"] < rows[0]["similarity"]
    recent = search_articles(env.runtime, "troops sent to Russia", since=NOW - timedelta(days=5))
    assert [r["title"] for r in recent] == [next(iter(texts))]
    indonesian = search_articles(env.runtime, "troops sent to Russia", lang="id")
    assert [r["title"] for r in indonesian] == [list(texts)[1]]


@pytest.mark.slow
def test_search_command_with_the_real_model(env, embedder) -> None:
    store_real_vectors(env.runtime.sessions, embedder)
    result = monitor(
        env.config_path, "search", "troops sent to Russia", "--min-score=-1", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows[0]["title"].startswith("North Korea sends")
    assert len(rows) == 4
    cache = Path(env.config.database_url.split("///", 1)[1] + ".vectors")
    assert list(cache.rglob("vectors.npy"))  # the next run memory-maps this


def test_server_warm_up_loads_vectors_before_the_first_search(env, embedder) -> None:
    from monitor.search import warm_up

    env.runtime.resources.embedder = embedder
    warm_up(env.runtime)  # no vectors for this model yet: nothing loaded, no error
    assert embedder.model_id not in env.runtime.resources.vector_indexes
    store_real_vectors(env.runtime.sessions, embedder)
    warm_up(env.runtime)
    assert len(env.runtime.resources.vector_indexes[embedder.model_id]) == 4


def test_tag_filters_feeds_and_matches(env, cli) -> None:
    """Feed tags filter `feeds list` and `matches` (case-insensitive)."""
    from monitor.store.models import Feed

    with db.session_scope(env.runtime.sessions) as session:
        session.get(Feed, env.seeded.feeds["World Desk"]).tags = ["world", "english"]
        session.get(Feed, env.seeded.feeds["Broken Feed"]).tags = ["worldwide"]
    feeds = json.loads(cli("feeds", "list", "--tag", "World", "--format", "json").stdout)
    assert [f["name"] for f in feeds] == ["World Desk"]
    assert feeds[0]["tags"] == "world, english"
    everything = json.loads(cli("matches", "--limit", "100", "--format", "json").stdout)
    tagged = json.loads(cli("matches", "--tag", "world", "--limit", "100", "-f", "json").stdout)
    assert tagged
    assert {r["source"] for r in tagged} == {"World Desk"}
    assert len(tagged) == sum(r["source"] == "World Desk" for r in everything)
    assert cli("matches", "--tag", "nothing-has-this").stdout.strip() == "(none)"


def test_read_commands_neither_migrate_nor_sync(tmp_path, monkeypatch, capsys) -> None:
    """`matches` and `show` only read: on a database without the schema they say so in one line
    and leave the file untouched (no tables created, no config mirrored)."""
    from sqlalchemy import create_engine, inspect

    from monitor.cli import main
    from tests.query.conftest import config_text

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    config_path = tmp_path / "config.toml"
    config_path.write_text(config_text(url))
    for args in (["matches"], ["show", "a1"]):
        monkeypatch.setattr(sys, "argv", ["monitor", "--config", str(config_path), *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main()
        err = capsys.readouterr().err
        assert exited.value.code == 2, err  # DatabaseError.exit_code
        assert "no monitor schema yet: run `monitor db upgrade`" in err
        assert len(err.strip().splitlines()) == 1
    assert inspect(create_engine(url)).get_table_names() == []
