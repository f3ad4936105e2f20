"""`monitor topics add` then `monitor topics suggest` on a small store built here, with the real
packaged model: the new topic is previewed on the stored articles, and the suggested `require`
groups carry the Indonesian and Polish spellings the stored articles use."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import load_config
from monitor.pipeline import suggest
from monitor.pipeline.runtime import open_runtime
from monitor.store import db
from monitor.store.models import Article, Feed
from tests.support.models import pin_model

from . import stories

CONFIG = """\
[database]
url = "sqlite:///monitor.db"

[alerts.console]
type = "console"
"""


def invoke(config: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """config.toml with no topic, and a database holding the stories' articles."""
    path = tmp_path / "config.toml"
    # the suggestion figures below were worked out with the packaged MiniLM model
    path.write_text(pin_model(CONFIG), encoding="utf-8")
    runtime = open_runtime(load_config(path))
    now = datetime.now(UTC)
    try:
        with db.session_scope(runtime.sessions) as session:
            feed = Feed(url="http://news.test/all.xml", name="All the news")
            session.add(feed)
            session.flush()
            for i, (title, summary, lang) in enumerate(stories.articles()):
                session.add(
                    Article(
                        feed_id=feed.id,
                        entry_key=f"e{i}",
                        link=f"http://news.test/{i}",
                        title=title,
                        summary=summary,
                        language=lang,
                        published_at=now - timedelta(hours=1 + i),
                        is_history=True,
                    )
                )
    finally:
        runtime.close()
    return path


def test_add_previews_the_new_topic_and_suggest_finds_spellings_in_stored_articles(
    store: Path,
) -> None:
    seed = store.parent / "story.txt"
    seed.write_text(stories.SEED, encoding="utf-8")
    before = store.read_text(encoding="utf-8")
    out = invoke(
        store, "topics", "add", "nk-russia", "--seed-file", str(seed), "--threshold", "0.5"
    )
    # the preview of the new topic, on every stored article
    assert f"{len(stories.articles())} stored articles published in the last 7d" in out
    assert "topic nk-russia: " in out
    assert "score histogram" in out

    out = invoke(store, "topics", "suggest", "nk-russia")
    assert store.read_text(encoding="utf-8").startswith(before)  # suggest writes nothing
    assert "require = [" in out
    snippet = tomllib.loads(out)  # pastes as TOML
    groups = snippet["require"]
    assert len(groups) == 2  # --groups 2 by default; the rest are comments
    korea = next(g for g in groups if "north korea*" in g or "north korea" in g)
    assert "korea utara" in korea  # Indonesian
    assert "kore* północn*" in korea  # Polish, three inflected forms pooled
    assert "korea selatan" not in korea  # South Korea, in look-alike articles
    russia = next(g for g in groups if "russia" in g)
    assert "rusia" in russia
    assert "# Kim Jong Un: " in out or '"kim jong un"' in out  # the other seed names, commented


def test_unknown_topic_is_one_clear_error(store: Path) -> None:
    result = CliRunner().invoke(app, ["--config", str(store), "topics", "suggest", "nope"])
    assert result.exception is not None
    assert 'no topic "nope"' in str(result.exception)


# --- the steps on plain texts -----------------------------------------------------------------


def random_names(names: list[str]) -> suggest.NameVectors:
    """Unrelated vectors: only spelling and company can align names here."""
    rng = np.random.default_rng(1)
    return {n: (v := rng.standard_normal(16)) / np.linalg.norm(v) for n in names}


def corpus(similar: bool = False) -> suggest.Corpus:
    title, _, body = stories.SEED.partition("\n")
    texts = [f"{t}\n{s}" for t, s, _ in stories.articles()]
    return suggest.Corpus(body, title, texts, [similar] * len(texts))


def test_names_are_capitalised_runs_and_acronyms_but_not_sentence_openers() -> None:
    case = suggest.WordCase()
    text = (
        "Meanwhile the DPRK said Kim Jong Un met officials. Officials in Korea Utara agreed.\n"
        "Sementara itu, pejabat Korea Utara setuju. meanwhile officials met again."
    )
    case.add(text)
    assert suggest.names_in(text, case) == ["DPRK", "Kim Jong Un", "Korea Utara", "Korea Utara"]
    odd = "Stray marks - ' ’ -- and Seoul's mayor, Kim Jong-un's envoy - in Seoul."
    case.add(odd)
    assert suggest.names_in(odd, case) == ["Seoul", "Kim Jong-un", "Seoul"]


def test_look_alike_names_join_the_seed_name_they_keep_company_with() -> None:
    groups, similar = suggest.suggest_groups(corpus(), random_names)
    by_name = {g.name: g for g in groups}
    assert list(by_name)[:2] == ["North Korea", "Russia"]
    assert similar == len(stories.ENGLISH_STORY + stories.INDONESIAN_STORY + stories.POLISH_STORY)
    korea = by_name["North Korea"]
    assert "korea utara" in korea.aliases
    assert "kore* północn*" in korea.aliases
    assert all("selatan" not in a for g in groups for a in g.aliases)
    assert by_name["Putin"].aliases == ("putin*",)  # Putina, Putinowi: Polish cases


def test_inflected_forms_pool_into_one_prefix_alias() -> None:
    assert suggest.prefix_aliases(["korea północna", "korei północnej", "koreę północną"]) == [
        "kore* północn*"
    ]
    assert suggest.prefix_aliases(["russia", "rusia"]) == ["russia", "rusia"]  # 3 letters: no
    assert suggest.families(["korea polnocna", "korei polnocnej", "rusia"]) == {
        "kore* polnocn*": ["korea polnocna", "korei polnocnej"],
        "rusia": ["rusia"],
    }


def test_a_name_written_beside_the_seed_name_is_not_its_spelling() -> None:
    # "Gedung Putih" (the White House) resembles "Putin" and keeps its company, but is written
    # in the same articles as Putin: a spelling replaces a name, it does not stand beside it
    seed_title = "Putin and Kim Jong Un meet"
    seed = "Putin met Kim Jong Un in Pyongyang. Putin praised Kim Jong Un."
    texts = [
        "Putin bertemu Kim Jong Un\nGedung Putih mengecam pertemuan Putin dan Kim Jong Un.",
        "Gedung Putih menanggapi Putin\nPutin dan Kim Jong Un bicara; kata Gedung Putih.",
        "Poutine rencontre Kim Jong Un\nPoutine et Kim Jong Un signent un accord.",
        "Poutine parle\nKim Jong Un remercie Poutine pour son soutien.",
    ]
    groups, _ = suggest.suggest_groups(
        suggest.Corpus(seed, seed_title, texts, [True] * len(texts)), random_names
    )
    putin = next(g for g in groups if g.name == "Putin")
    assert putin.aliases == ("putin", "poutine")


def test_words_pair_only_when_they_start_alike_and_are_long_enough() -> None:
    assert suggest.words_pair("korei", "korea")
    assert suggest.words_pair("rusia", "russia")
    assert suggest.words_pair("pjongjang", "pyongyang")
    assert not suggest.words_pair("asia", "rusia")  # a different first letter
    assert not suggest.words_pair("ria", "rusia")  # too short to tell
    assert not suggest.words_pair("antara", "utara")


def test_aliases_another_alias_already_finds_are_dropped() -> None:
    assert suggest.without_redundant(["putin*", "władimir* putin*"]) == ["putin*"]
    assert suggest.without_redundant(["russia", "rusia", "russia*"]) == ["rusia", "russia*"]
    assert suggest.without_redundant(["north korea*", "korea utara"]) == [
        "north korea*",
        "korea utara",
    ]
