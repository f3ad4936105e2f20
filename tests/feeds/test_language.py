"""Each article's language: declared by its feed, or detected from its text when the feed
declares none or several; and ``monitor matches --lang`` filtering on it.

Feeds are served by the real loopback server and polled by the real polling stage; the
detector is the real py3langid model.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.config import Config, DatabaseConfig, FeedConfig, PollingConfig
from monitor.feeds.language import declared_language, detect_language
from monitor.feeds.parse import ParserPool
from monitor.pipeline.polling import poll_due
from monitor.pipeline.runtime import Runtime, open_runtime
from monitor.store import db
from monitor.store.models import Article, Match, Topic
from tests.feeds.conftest import RSS, fixture
from tests.support.httpserver import LocalServer, Reply

ATOM = {"Content-Type": "application/atom+xml; charset=utf-8"}


@pytest.fixture
def runtimes(shared_pool: ParserPool) -> Iterator[list[Runtime]]:
    made: list[Runtime] = []
    yield made
    for runtime in made:
        runtime.resources.parser_pool = None  # shared: closed by its own fixture
        runtime.close()


def _poll(
    server: LocalServer,
    sqlite_url: str,
    shared_pool: ParserPool,
    runtimes: list[Runtime],
    name: str,
    *,
    language: str = "",
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Serve one fixture, poll it once (as history), return link -> stored language."""
    server.route(f"/{name}", Reply(body=fixture(name), headers=headers or RSS))
    config = Config(
        database=DatabaseConfig(url=sqlite_url),
        polling=PollingConfig(connect_timeout=2.0, read_timeout=2.0, total_timeout=5.0),
        feeds=[FeedConfig(url=server.url(f"/{name}"), language=language)],
    )
    runtime = open_runtime(config)
    runtime.resources.parser_pool = shared_pool
    runtimes.append(runtime)
    report = poll_due(runtime)
    assert report.feeds_failed == 0
    with db.session_scope(runtime.sessions) as session:
        return {a.link.rsplit("/", 1)[-1]: a.language for a in session.scalars(select(Article))}


def test_a_feed_without_declarations_gets_each_entry_detected(
    server: LocalServer, sqlite_url: str, shared_pool: ParserPool, runtimes: list[Runtime]
) -> None:
    stored = _poll(server, sqlite_url, shared_pool, runtimes, "mixed_languages.xml")
    assert stored == {"ferry-terminal": "en", "terminal-feri": "id", "terminal-promowy": "pl"}


def test_a_feed_declaring_one_language_keeps_it(
    server: LocalServer, sqlite_url: str, shared_pool: ParserPool, runtimes: list[Runtime]
) -> None:
    # the English entry stays "id": the publisher's declaration wins over the detector
    stored = _poll(server, sqlite_url, shared_pool, runtimes, "declared_indonesian.xml")
    assert stored == {"terminal-feri": "id", "ferry-terminal-en": "id"}


def test_language_auto_detects_even_where_the_feed_declares_one(
    server: LocalServer, sqlite_url: str, shared_pool: ParserPool, runtimes: list[Runtime]
) -> None:
    stored = _poll(
        server, sqlite_url, shared_pool, runtimes, "declared_indonesian.xml", language="auto"
    )
    assert stored == {"terminal-feri": "id", "ferry-terminal-en": "en"}


def test_a_configured_language_is_used_before_detection(
    server: LocalServer, sqlite_url: str, shared_pool: ParserPool, runtimes: list[Runtime]
) -> None:
    stored = _poll(server, sqlite_url, shared_pool, runtimes, "mixed_languages.xml", language="pl")
    assert set(stored.values()) == {"pl"}


def test_a_feed_declaring_several_languages_gets_each_entry_detected(
    server: LocalServer, sqlite_url: str, shared_pool: ParserPool, runtimes: list[Runtime]
) -> None:
    stored = _poll(server, sqlite_url, shared_pool, runtimes, "several_languages.xml")
    assert stored == {"ferry-terminal": "en", "terminal-feri": "id"}


def test_entries_with_their_own_xml_lang_keep_it_and_the_rest_are_detected(
    server: LocalServer, sqlite_url: str, shared_pool: ParserPool, runtimes: list[Runtime]
) -> None:
    # no feed-level xml:lang; two entries declare id and pl, the other two nothing: detected
    stored = _poll(
        server, sqlite_url, shared_pool, runtimes, "per_entry_xml_lang.xml", headers=ATOM
    )
    assert stored == {
        "terminal-feri": "id",
        "terminal-promowy": "pl",
        "budzet": "pl",
        "dredging": "en",
    }


def test_declared_language_values() -> None:
    assert declared_language("en-US") == ("en", False)
    assert declared_language("pt_BR") == ("pt", False)
    assert declared_language("en, id") == ("", True)
    assert declared_language("en id") == ("", True)
    assert declared_language("EN; en-GB") == ("en", False)
    assert declared_language("") == ("", False)
    assert declared_language(None) == ("", False)
    assert declared_language("English!") == ("", False)


def test_too_little_text_is_unknown_rather_than_guessed() -> None:
    assert detect_language("Seoul") == ""
    assert detect_language("Kim Jong Un 2026") == ""
    assert detect_language("Radni przyjęli budżet miasta na przyszły rok") == "pl"


def test_matches_lang_filters_on_the_stored_language(
    server: LocalServer,
    sqlite_url: str,
    shared_pool: ParserPool,
    runtimes: list[Runtime],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _poll(server, sqlite_url, shared_pool, runtimes, "mixed_languages.xml")
    with db.session_scope(runtimes[0].sessions) as session:
        topic = Topic(name="ferries", threshold=0.3)
        session.add(topic)
        session.flush()
        for article in session.scalars(select(Article)):
            session.add(
                Match(
                    article_id=article.id,
                    topic_id=topic.id,
                    score=0.5,
                    published_at=article.published_at,
                )
            )
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n', encoding="utf-8")

    def matches(*args: str) -> list[dict[str, str]]:
        from monitor.cli import main

        argv = ["monitor", "--config", str(config), "matches", "--format", "json", *args]
        monkeypatch.setattr(sys, "argv", argv)
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code in (0, None)
        return json.loads(capsys.readouterr().out)

    assert {row["language"] for row in matches()} == {"en", "id", "pl"}
    only_id = matches("--lang", "id")
    assert [(row["language"], row["title"][:10]) for row in only_id] == [("id", "Pemerintah")]
    assert matches("--lang", "fr") == []
