"""`monitor feeds import|export` with OPML, through the CLI's real entry point on a real
database: folders and categories become tags, duplicates are skipped and counted, a round trip
keeps every URL and category, and a malformed file is refused whole with one line."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import listparser
import pytest
from sqlalchemy import select

from monitor.config import load_config
from monitor.pipeline.runtime import open_runtime
from monitor.store import db
from monitor.store.models import Feed

OPML = Path(__file__).resolve().parent.parent / "fixtures" / "opml"
EXPECTED = {
    # listed twice: imported once, with the folders of both listings
    "https://peninsula.example/rss.xml": ("Peninsula Wire", {"Korea", "World"}),
    "https://seoul.example/feed?x=1&y=2": (
        "Seoul & Beyond <b>",
        {"Asia/East", "sanctions", "Korea"},
    ),
    "https://baltic.example/atom.xml": ("Baltic Desk", {"World/Europe"}),
    "http://plain.example/rss": ("No folder", set()),
}

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def make_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], tuple[Run, Path]]:
    """A config (own SQLite file, one feed from config.toml) and a runner of ``monitor.cli.main``
    in-process, as a user would call it."""
    from monitor.cli import main

    def make(name: str) -> tuple[Run, Path]:
        folder = tmp_path / name
        folder.mkdir()
        config = folder / "config.toml"
        config.write_text(
            '[database]\nurl = "sqlite:///monitor.db"\n\n'
            '[[feeds]]\nurl = "http://plain.example/rss"\ntags = ["config-tag"]\n',
            encoding="utf-8",
        )

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            monkeypatch.setattr(sys, "argv", ["monitor", "--config", str(config), *args])
            capsys.readouterr()
            code = 0
            try:
                main()
            except SystemExit as exc:
                code = int(exc.code or 0)
            out, err = capsys.readouterr()
            return subprocess.CompletedProcess(args, code, out, err)

        return run, config

    return make


def stored(config: Path) -> dict[str, tuple[str, set[str]]]:
    runtime = open_runtime(load_config(config), sync=False)
    try:
        with db.session_scope(runtime.sessions) as session:
            return {f.url: (f.name, set(f.tags or ())) for f in session.scalars(select(Feed))}
    finally:
        runtime.close()


def test_import_turns_folders_and_categories_into_tags_and_counts_duplicates(make_cli) -> None:
    run, config = make_cli("a")
    result = run("feeds", "import", str(OPML / "reader-export.opml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "imported 3 feeds; skipped 1 listed twice, 1 already stored, 1 not http(s)"
    )
    feeds = stored(config)
    assert feeds["http://plain.example/rss"] == ("", {"config-tag"})  # from config.toml
    assert {url: feeds[url] for url in EXPECTED if "plain" not in url} == {
        url: value for url, value in EXPECTED.items() if "plain" not in url
    }
    again = run("feeds", "import", str(OPML / "reader-export.opml"))
    assert again.stdout.strip() == (
        "imported 0 feeds; skipped 1 listed twice, 4 already stored, 1 not http(s)"
    )


def test_opml_round_trip_keeps_every_url_and_category(make_cli) -> None:
    run, config = make_cli("a")
    assert run("feeds", "import", str(OPML / "reader-export.opml")).returncode == 0
    exported = run("feeds", "export", "--format", "opml")
    assert exported.returncode == 0, exported.stderr
    original = stored(config)
    assert len(original) == 4
    # a feed reader sees folders and categories
    parsed = listparser.parse(exported.stdout.encode())
    assert {f.url for f in parsed.feeds} == set(original)
    assert "Seoul &amp; Beyond &lt;b&gt;" in exported.stdout  # escaped by the XML writer

    path = config.parent / "export.opml"
    path.write_text(exported.stdout, encoding="utf-8")
    run_b, config_b = make_cli("b")
    result = run_b("feeds", "import", str(path))
    assert result.returncode == 0, result.stderr
    copy = stored(config_b)
    assert set(copy) == set(original)
    for url, (name, tags) in original.items():
        if url == "http://plain.example/rss":  # b's config.toml holds it already
            continue
        assert copy[url] == (name, tags), url
    assert run_b("feeds", "export", "-o", str(config_b.parent / "b.opml")).returncode == 0
    assert (config_b.parent / "b.opml").read_text(encoding="utf-8").count("xmlUrl=") == 4


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated.opml", r"truncated.opml:\d+: not well-formed XML"),
        ("with-entities.opml", "must not declare a DTD or entities"),
        ("not-opml.xml", r"not an OPML file \(its root element is <rss>\)"),
    ],
)
def test_a_malformed_file_is_refused_whole_with_one_line(make_cli, name, message) -> None:
    run, config = make_cli("a")
    before = stored(config)
    result = run("feeds", "import", str(OPML / name))
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert re.search(message, line), line
    assert line.endswith("nothing imported")
    assert stored(config) == before


def test_unknown_export_format_and_missing_file_are_one_line_errors(make_cli) -> None:
    run, _config = make_cli("a")
    result = run("feeds", "export", "--format", "csv")
    assert result.returncode == 2
    assert result.stderr.strip() == 'error: --format: "csv" is not a known format (known: opml)'
    missing = run("feeds", "import", "/nonexistent/list.opml")
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: /nonexistent/list.opml: cannot read")
