"""The persistent search index (monitor/store/annindex.py) on real SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, insert, update

from monitor.store import annindex, db
from monitor.store.annindex import AnnIndex, Filters
from monitor.store.models import Article, Embedding, Feed, Match, Topic
from tests.query.data import store_real_vectors

DIM = 16
NOW = datetime.now(UTC).replace(microsecond=0)


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def add_articles(url: str, vectors: np.ndarray, model_id: str = "m1", start: int = 0) -> list[int]:
    """Articles ``start``.. with ``vectors``: feed 1 or 2 alternately, every 10th in "id", one
    an hour older than the previous."""
    engine = db.make_engine(url)
    sessions = db.make_session_factory(engine)
    with db.session_scope(sessions) as s:
        if s.get(Feed, 1) is None:
            s.add_all(
                [
                    Feed(id=1, url="http://f.test/1", name="One"),
                    Feed(id=2, url="http://f.test/2", name="Two"),
                ]
            )
            s.flush()
        ids = list(range(start + 1, start + len(vectors) + 1))
        s.execute(
            insert(Article),
            [
                {
                    "id": i,
                    "feed_id": 1 + i % 2,
                    "entry_key": f"e{i}",
                    "link": f"http://f.test/a/{i}",
                    "title": f"Article {i}",
                    "language": "id" if i % 10 == 0 else "en",
                    "published_at": NOW - timedelta(hours=i),
                }
                for i in ids
            ],
        )
        s.execute(
            insert(Embedding),
            [
                {"article_id": i, "model_id": model_id, "dim": DIM, "vector": v.tobytes()}
                for i, v in zip(ids, vectors, strict=True)
            ],
        )
    engine.dispose()
    return ids


@pytest.fixture
def database(db_url: str):
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    yield db_url, db.make_session_factory(engine)
    engine.dispose()


def _store_later(sessions, vectors: np.ndarray, ids: list[int], **columns) -> None:
    """Store the vectors of articles ``ids`` now (article i has ``vectors[i - 1]``), as a worker
    committing late or the matching stage's backfill does."""
    with db.session_scope(sessions) as s:
        s.add_all(
            Embedding(
                article_id=i, model_id="m1", dim=DIM, vector=vectors[i - 1].tobytes(), **columns
            )
            for i in ids
        )


def _sync(index: AnnIndex, sessions, **kw):
    with db.session_scope(sessions) as s:
        return index.sync(s, **kw)


def test_index_is_built_saved_and_reopened_without_rebuilding(database, tmp_path: Path) -> None:
    url, sessions = database
    vectors = _vectors(400, 1)
    add_articles(url, vectors)
    seen: list[tuple[int, int]] = []
    index = AnnIndex(tmp_path / "idx", "m1")
    skipped = _sync(index, sessions, wait_for_lock=False, rebuild_max=399)  # the daemon's hook
    assert not skipped.rebuilt
    assert not (tmp_path / "idx" / "manifest.json").exists()
    assert index.search(vectors[0], limit=3) == []
    report = _sync(index, sessions, progress=lambda done, total: seen.append((done, total)))
    assert report.rebuilt
    assert seen[-1] == (400, 400)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["count"] == 400
    assert manifest["max_article_id"] == 400
    assert manifest["dtype"] == "i8"
    assert manifest["model_id"] == "m1"
    for target in (0, 57, 399):
        assert index.search(vectors[target], limit=3)[0][0] == target + 1
    exact = np.argsort(-(vectors @ vectors[5]))[:10] + 1
    found = [i for i, _ in index.search(vectors[5], limit=10)]
    assert len(set(found) & set(exact.tolist())) >= 9
    with db.session_scope(sessions) as s:  # re-ranked by the stored float32 vectors
        reranked = index.search(vectors[5], limit=10, session=s)
    assert [i for i, _ in reranked] == exact.tolist()
    assert reranked[1][1] == pytest.approx(float(vectors[exact[1] - 1] @ vectors[5]), abs=1e-6)

    reopened = AnnIndex(tmp_path / "idx", "m1")
    again = _sync(reopened, sessions)
    assert not again.rebuilt
    assert again.added == 0
    assert len(reopened) == 400
    assert reopened.search(vectors[57], limit=1)[0][0] == 58
    assert index.search(np.ones(3, dtype=np.float32), limit=3) == []  # other dimension


def test_new_vectors_are_searchable_at_once_and_saved_incrementally(
    database, tmp_path: Path
) -> None:
    url, sessions = database
    add_articles(url, _vectors(300, 1))
    index = AnnIndex(tmp_path / "idx", "m1")
    _sync(index, sessions)
    new = _vectors(5, 2)
    add_articles(url, new, start=300)
    report = _sync(index, sessions)
    assert report.added == 5
    assert not report.rebuilt
    assert not report.saved
    assert index.search(new[2], limit=1)[0][0] == 303
    with db.session_scope(sessions) as s:
        assert index.flush(s)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["count"] == 305
    assert manifest["generation"] == 2
    assert sorted(p.name for p in (tmp_path / "idx").glob("index-*")) == ["index-2.usearch"]
    # past the delta threshold (max(100, 1%)), a sync saves by itself
    add_articles(url, _vectors(120, 3), start=305)
    assert _sync(index, sessions).saved
    assert json.loads((tmp_path / "idx" / "manifest.json").read_text())["count"] == 425


def test_stale_index_is_rebuilt(database, tmp_path: Path) -> None:
    """A model change (another folder, or a manifest naming another model) and a restore (the
    newest indexed vector is not the database's) rebuild from the database."""
    url, sessions = database
    vectors = _vectors(200, 1)
    add_articles(url, vectors)
    folder = tmp_path / "idx"
    _sync(AnnIndex(folder, "m1"), sessions)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "model_id": "m0"}))
    assert _sync(AnnIndex(folder, "m1"), sessions).rebuilt
    assert _sync(AnnIndex(folder, "m1", dtype="f16"), sessions).rebuilt  # storage type changed

    replaced = _vectors(1, 9)[0]
    with db.session_scope(sessions) as s:  # "restore": row 200 now holds another vector
        s.execute(
            update(Embedding).where(Embedding.article_id == 200).values(vector=replaced.tobytes())
        )
    index = AnnIndex(folder, "m1", dtype="f16")
    assert _sync(index, sessions).rebuilt
    assert index.search(replaced, limit=1)[0][0] == 200

    with db.session_scope(sessions) as s:  # deleted articles disappear from results
        s.execute(delete(Embedding).where(Embedding.article_id <= 100))
    assert _sync(index, sessions).added == 0
    assert len(index) == 100
    assert all(i > 100 for i, _ in index.search(vectors[3], limit=20))


def test_filters_still_return_limit(database, tmp_path: Path, monkeypatch) -> None:
    url, sessions = database
    vectors = _vectors(1000, 1)
    add_articles(url, vectors)
    with db.session_scope(sessions) as s:
        s.add(Topic(id=1, name="t", threshold=0.4))
        s.flush()
        s.execute(
            insert(Match),
            [
                {
                    "article_id": i,
                    "topic_id": 1,
                    "score": 0.5,
                    "semantic_score": 0.5,
                    "published_at": NOW - timedelta(hours=i),
                }
                for i in range(7, 1000, 50)
            ],
        )
    index = AnnIndex(tmp_path / "idx", "m1")
    _sync(index, sessions)
    q = vectors[0]
    for exact_below in (annindex.EXACT_BELOW, 0):  # exact over the filtered set; growing k
        monkeypatch.setattr(annindex, "EXACT_BELOW", exact_below)
        in_id = index.search(q, limit=15, filters=Filters(lang="id"))
        assert len(in_id) == 15
        assert all(i % 10 == 0 for i, _ in in_id)
        week = index.search(q, limit=15, filters=Filters(since=NOW - timedelta(hours=200)))
        assert len(week) == 15
        assert all(i < 200 for i, _ in week)
        feed = index.search(q, limit=15, filters=Filters(feed_ids=(2,), lang="en"))
        assert len(feed) == 15
        assert all(i % 2 == 1 and i % 10 for i, _ in feed)
        with db.session_scope(sessions) as s:
            _feed_ids, topic_ids = annindex.resolve_filters(s, topic="t", feed=None)
        topical = index.search(q, limit=15, filters=Filters(article_ids=topic_ids))
        assert len(topical) == 15
        assert {i for i, _ in topical} <= set(range(7, 1000, 50))
        scores = [s for _, s in in_id]
        assert scores == sorted(scores, reverse=True)
        exact = [int(i) + 1 for i in np.argsort(-(vectors @ q)) if (i + 1) % 10 == 0][:15]
        assert len({i for i, _ in in_id} & set(exact)) >= 13


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    sys.path.insert(0, {root!r})
    from tests.query.test_search_index import add_articles
    from monitor.store import db
    from monitor.store.annindex import AnnIndex
    url, folder, save = sys.argv[1], sys.argv[2], sys.argv[3] == "save"
    vectors = np.frombuffer(bytes.fromhex(sys.argv[4]), dtype=np.float32).reshape(-1, 16)
    add_articles(url, vectors, start=int(sys.argv[5]))
    if save:
        engine = db.make_engine(url)
        index = AnnIndex(Path(folder), "m1")
        with db.session_scope(db.make_session_factory(engine)) as s:
            index.sync(s)
            assert index.flush(s)
        engine.dispose()
""")


def test_another_process_writes_are_found(database, tmp_path: Path) -> None:
    """A second process stores vectors (a daemon worker): the searcher catches up from the
    database; when that process also saved a generation, the searcher follows it."""
    url, sessions = database
    add_articles(url, _vectors(300, 1))
    folder = tmp_path / "idx"
    index = AnnIndex(folder, "m1")
    _sync(index, sessions)
    root = str(Path(__file__).resolve().parents[2])
    script = WRITER.format(root=root)
    first = _vectors(3, 4)
    subprocess.run(
        [sys.executable, "-c", script, url, str(folder), "db-only", first.tobytes().hex(), "300"],
        check=True,
    )
    _sync(index, sessions)
    assert index.search(first[1], limit=1)[0][0] == 302
    second = _vectors(3, 5)
    subprocess.run(
        [sys.executable, "-c", script, url, str(folder), "save", second.tobytes().hex(), "303"],
        check=True,
    )
    assert json.loads((folder / "manifest.json").read_text())["count"] == 306
    report = _sync(index, sessions)
    assert index.manifest is not None
    assert index.manifest.generation == 2
    assert report.added == 0
    assert not report.rebuilt
    assert len(index) == 306
    assert index.search(second[2], limit=1)[0][0] == 306
    assert index.search(first[0], limit=1)[0][0] == 301


def test_out_of_order_commit_is_found(database, tmp_path: Path) -> None:
    """Worker A commits article 50's vector after worker B's 60: id catch-up alone misses it."""
    url, sessions = database
    vectors = _vectors(60, 1)
    add_articles(url, vectors)
    with db.session_scope(sessions) as s:
        s.execute(delete(Embedding).where(Embedding.article_id == 50))
    index = AnnIndex(tmp_path / "idx", "m1")
    _sync(index, sessions)
    assert len(index) == 59
    _store_later(sessions, vectors, [50])
    assert _sync(index, sessions).added == 1
    assert index.search(vectors[49], limit=1)[0][0] == 50


def test_deferred_vectors_stored_later_are_found_without_diffing_every_id(
    database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vectors made later for old articles (deferred by the matching stage) sit below the
    highest indexed id: a process that saw the index complete finds them by the time they were
    stored, and so does a fresh process from the saved generation; no id list is diffed."""
    url, sessions = database
    vectors = _vectors(200, 1)
    add_articles(url, vectors)
    late = list(range(50, 60))
    with db.session_scope(sessions) as s:
        s.execute(delete(Embedding).where(Embedding.article_id.in_(late)))
    folder = tmp_path / "idx"
    running = AnnIndex(folder, "m1")
    _sync(running, sessions)
    assert len(running) == 190
    monkeypatch.setattr(AnnIndex, "_reconcile", lambda self, s: pytest.fail("diffed every id"))
    _store_later(sessions, vectors, late[:5])
    assert _sync(running, sessions).added == 5
    assert running.search(vectors[51], limit=1)[0][0] == 52
    fresh = AnnIndex(folder, "m1")  # another process: the saved generation's complete_at
    _store_later(sessions, vectors, late[5:])
    assert _sync(fresh, sessions).added == 10
    assert fresh.search(vectors[57], limit=1)[0][0] == 58
    assert _sync(running, sessions).added == 5
    assert len(running) == len(fresh) == 200


def test_a_vector_stored_before_the_slack_is_still_found_by_diffing(
    database, tmp_path: Path
) -> None:
    """The time window is a shortcut, not the truth: a row whose stored time falls before it
    (a clock far behind) shows as a count mismatch and is found by the id diff."""
    url, sessions = database
    vectors = _vectors(60, 1)
    add_articles(url, vectors)
    with db.session_scope(sessions) as s:
        s.execute(delete(Embedding).where(Embedding.article_id == 50))
    index = AnnIndex(tmp_path / "idx", "m1")
    _sync(index, sessions)
    old = datetime.now(UTC) - timedelta(seconds=annindex.LATE_SLACK_S + 3600)
    _store_later(sessions, vectors, [50], created_at=old)
    assert _sync(index, sessions).added == 1
    assert index.search(vectors[49], limit=1)[0][0] == 50


def test_matching_stage_updates_the_index_and_search_filters_by_topic_and_feed(
    env_any, embedder
) -> None:
    """The pipeline hook: embedding stored articles builds the index on disk, beside a SQLite
    file or under the data folder for PostgreSQL; search then filters by topic and feed."""
    from monitor.pipeline import indexing
    from monitor.pipeline.matching import embed_stored
    from monitor.search import search_articles

    rt = env_any.runtime
    rt.resources.embedder = embedder
    root = rt.config.search_index_root()
    assert root is not None
    assert not root.exists()
    embedded = embed_stored(rt)
    assert embedded == len(env_any.seeded.articles)
    index = indexing.search_index(rt, embedder.model_id)
    assert index is not None
    assert index.manifest is not None
    assert index.manifest.count == embedded
    assert index.manifest_path.exists()
    if rt.config.database_url.startswith("sqlite"):
        assert root == Path(rt.config.database_url.split("///", 1)[1] + ".index")

    alliance = search_articles(rt, "troops", topic="alliance", limit=5, min_score=-1.0)
    with db.session_scope(rt.sessions) as s:
        _, allowed = annindex.resolve_filters(s, topic="alliance", feed=None)
    assert len(alliance) == 5
    assert {r["article_id"] for r in alliance} <= set(allowed.tolist())
    dunia = search_articles(rt, "troops", feed="Berita Dunia", limit=50, min_score=-1.0)
    assert dunia
    assert {r["source"] for r in dunia} == {"Berita Dunia"}


@pytest.mark.parametrize("index_dir", ["", "not-a-folder"])
def test_search_without_a_usable_index_scans_exactly(env, embedder, index_dir) -> None:
    """`search.index_dir = ""`, or a folder that cannot be created: the exact scan answers."""
    from monitor.config import SearchConfig
    from monitor.search import search_articles

    rt = env.runtime
    (env.config_path.parent / "not-a-folder").write_text("a file, not a folder")
    rt.config = rt.config.model_copy(update={"search": SearchConfig(index_dir=index_dir)})
    rt.resources.embedder = embedder
    store_real_vectors(rt.sessions, embedder)
    rows = search_articles(rt, "troops sent to Russia", limit=3, min_score=-1.0, one_shot=True)
    assert rows[0]["title"].startswith("North Korea sends")
    assert not rt.resources.search_indexes or index_dir
    indonesian = search_articles(rt, "troops", lang="id", feed="World Desk", min_score=-1.0)
    assert [r["language"] for r in indonesian] == ["id"]
