"""`monitor demo` end to end: sample feeds -> polling -> matching -> console alerts.

INTEGRATION test: it needs the polling (issue 3) and matching (issue 4) stages, which are built
on other branches. Until they are merged the stage entry points are the skeleton's placeholders
and this test is skipped with that reason; after the merge it runs for real.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from monitor.demo import FEEDS, render_feed
from monitor.pipeline import matching, polling

STAGES_MISSING = "NOT BUILT YET" in (polling.poll_due.__doc__ or "") or "NOT BUILT YET" in (
    matching.match_new.__doc__ or ""
)


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
@pytest.mark.skipif(STAGES_MISSING, reason="polling/matching stages not merged on this branch")
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
