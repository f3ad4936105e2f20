"""`monitor feeds remove` and `feeds add` as a user runs them: remove disables and keeps the
history unless --purge, says what it did, refuses a feed config.toml lists (naming the line);
add of a known URL says so with exit code 2, and restores a removed feed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from monitor.config import FeedConfig
from monitor.store import db, queries
from monitor.store.models import Article, Delivery, Feed, Match, Topic

CONFIG_FEED = "http://127.0.0.1:9/config-feed.xml"  # port 9: nothing is ever fetched
ADDED_FEED = "http://127.0.0.1:9/added-feed.xml"


def _monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path, write_config: Callable[..., Path]) -> Path:
    return write_config(f"""
        [database]
        url = "sqlite:///{tmp_path / "feeds.db"}"

        [[feeds]]
        name = "Configured"
        url = "{CONFIG_FEED}"
    """)


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'feeds.db'}"


def _seed_history(url: str, feed_url: str) -> None:
    """One article of the feed, matched and alerted: what a remove must not lose silently."""
    sessions = db.make_session_factory(db.make_engine(url, null_pool=True))
    now = datetime.now(UTC)
    with db.session_scope(sessions) as session:
        feed = session.scalar(select(Feed).where(Feed.url == feed_url))
        assert feed is not None
        topic = Topic(name="t", threshold=0.5)
        article = Article(feed_id=feed.id, entry_key="k1", title="Kept", published_at=now)
        session.add_all([topic, article])
        session.flush()
        match = Match(article_id=article.id, topic_id=topic.id, score=0.9, published_at=now)
        session.add(match)
        session.flush()
        session.add(Delivery(match_id=match.id, channel="console", idempotency_key="m1"))


def _counts(url: str) -> tuple[int, int, int, int]:
    engine = db.make_engine(url, null_pool=True)
    try:
        with engine.connect() as conn:
            return tuple(  # type: ignore[return-value]
                conn.scalar(select(func.count()).select_from(model)) or 0
                for model in (Feed, Article, Match, Delivery)
            )
    finally:
        engine.dispose()


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_remove_disables_keeps_history_until_purge_and_add_restores(
    config: Path, tmp_path: Path
) -> None:
    added = _monitor(config, "feeds", "add", ADDED_FEED, "--no-discover")
    assert added.returncode == 0, added.stderr
    _seed_history(_url(tmp_path), ADDED_FEED)

    removed = _monitor(config, "feeds", "remove", ADDED_FEED)
    assert removed.returncode == 0, removed.stderr
    assert "disabled feed 2" in removed.stdout
    assert "1 article, 1 match and 1 delivery" in removed.stdout
    assert "--purge" in removed.stdout
    assert _counts(_url(tmp_path)) == (2, 1, 1, 1)  # history kept

    again = _one_error_line(_monitor(config, "feeds", "remove", ADDED_FEED))
    assert "feed 2 is already removed" in again
    # the next command (which syncs config.toml) does not bring it back
    listing = _monitor(config, "feeds", "list", "--format", "json")
    health = {row["url"]: row["health"] for row in json.loads(listing.stdout)}
    assert health[ADDED_FEED].startswith("disabled: removed with `monitor feeds remove`")

    restored = _monitor(config, "feeds", "add", ADDED_FEED, "--no-discover")
    assert restored.returncode == 0, restored.stderr
    assert "polled again, history kept" in restored.stdout
    listing = _monitor(config, "feeds", "list", "--format", "json")
    health = {row["url"]: row["health"] for row in json.loads(listing.stdout)}
    assert health[ADDED_FEED] == "new"

    purged = _monitor(config, "feeds", "remove", "2", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert "deleted feed 2" in purged.stdout
    assert "1 article, 1 match and 1 delivery" in purged.stdout
    assert _counts(_url(tmp_path)) == (1, 0, 0, 0)


def test_remove_refuses_a_config_feed_naming_the_line(config: Path, tmp_path: Path) -> None:
    line = _one_error_line(_monitor(config, "feeds", "remove", "Configured"))
    url_line = config.read_text().splitlines().index(f'url = "{CONFIG_FEED}"') + 1
    assert f"{config}:{url_line}" in line
    assert "delete that [[feeds]] entry" in line
    with db.session_scope(db.make_session_factory(db.make_engine(_url(tmp_path)))) as session:
        feed = session.scalar(select(Feed).where(Feed.url == CONFIG_FEED))
        assert feed is not None
        assert feed.enabled


def test_add_of_a_known_url_says_it_exists(config: Path) -> None:
    # no --no-discover: the check comes before any fetch (port 9 would refuse the connection)
    line = _one_error_line(_monitor(config, "feeds", "add", CONFIG_FEED))
    assert line == f"error: feed 1 already exists: {CONFIG_FEED}"


def test_a_removed_feed_listed_in_config_again_is_polled_again(sqlite_url: str) -> None:
    db.upgrade(sqlite_url)
    sessions = db.make_session_factory(db.make_engine(sqlite_url, null_pool=True))
    with db.session_scope(sessions) as session:
        queries.add_feed(session, ADDED_FEED)
    with db.session_scope(sessions) as session:
        assert not queries.remove_feed(session, ADDED_FEED).purged
    with db.session_scope(sessions) as session:
        assert queries.sync_feeds(session, [FeedConfig(url=ADDED_FEED)]) == (0, 1)
    with db.session_scope(sessions) as session:
        [feed] = session.scalars(select(Feed))
        assert (feed.enabled, feed.disabled_reason) == (True, "")
