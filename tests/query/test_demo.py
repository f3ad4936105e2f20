"""`monitor demo` end to end: sample feeds -> polling -> matching -> console alerts.

INTEGRATION test: the real polling, matching and delivery stages with the packaged model.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from monitor.demo import FEEDS, render_feed


def test_sample_feeds_hold_back_new_items_until_published() -> None:
    from datetime import UTC, datetime

    import feedparser

    now = datetime.now(UTC)
    for name in FEEDS:
        before = feedparser.parse(render_feed(name, published=False, now=now))
        after = feedparser.parse(render_feed(name, published=True, now=now))
        assert not before.bozo, name
        assert not after.bozo, name
        assert 0 < len(before.entries) < len(after.entries), name
        assert all(e.get("published_parsed") or e.get("updated_parsed") for e in after.entries)
        assert "${" not in render_feed(name, published=True, now=now).decode()


@pytest.mark.integration
@pytest.mark.slow
def test_demo_raises_alerts_for_the_story_only(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--keep", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sent = re.search(r"(\d+) alerts sent", result.stdout)
    assert sent, result.stdout
    assert int(sent.group(1)) >= 1, result.stdout
    listed = result.stdout.split("matches (what `monitor matches` shows):", 1)[1]
    assert "North Korean troops deployed to Russia" in listed
    assert "Kim Jong Un and Vladimir Putin sign" in listed
    for ordinary in (
        "stadium",
        "record quarterly profit",
        "bike lanes",
        "Harga beras",
        "bulu tangkis",
        "Heatwave",
    ):
        assert ordinary not in listed
