"""The topics pages: a topic previewed on stored articles before anything is written, saved
to config.toml (seed under seeds/), shown by `monitor topics list`, kept after a restart,
edited in place; and a topic's page with its chart, histogram and false alarms."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from monitor.config import load_config
from monitor.pipeline.runtime import open_runtime
from monitor.store import db, read_models
from monitor.store.models import Topic
from tests.conftest import FIXTURES
from tests.support.httpserver import LocalServer, Reply

FERRY = (
    "North Korea sends troops to Russia\n\n"
    "Thousands of North Korean soldiers were sent to fight for Russia, officials said.\n\n"
    "Pyongyang and Moscow signed a defence pact and troops crossed the border."
)
NEW = {
    "name": "troops",
    "seed_text": FERRY,
    "descriptions": "North Korean troops fighting for Russia",
    "threshold": "0.3",
    "channels": "console",
    "window": "30d",
}


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        page = (FIXTURES / "pages" / "article_with_chrome.html").read_bytes()
        srv.route("/article", Reply(body=page, headers={"Content-Type": "text/html"}))
        yield srv


def test_preview_scores_stored_articles_and_writes_nothing(open_client, env) -> None:
    before = env.config_path.read_text(encoding="utf-8")
    answer = open_client.post("/topics/preview", data=NEW)
    assert answer.status_code == 200, answer.text
    found = re.search(r"Preview: (\d+) of (\d+) stored articles would match", answer.text)
    assert found
    assert int(found.group(2)) > 0
    assert '<svg class="chart"' in answer.text
    assert env.config_path.read_text(encoding="utf-8") == before
    assert not (env.config_path.parent / "seeds").exists()
    assert 'value="troops"' in answer.text  # the form keeps what was typed


def test_preview_of_a_seed_url_fills_the_seed_text(open_client, env, server) -> None:
    answer = open_client.post(
        "/topics/preview", data={**NEW, "seed_text": "", "seed_url": server.url("/article")}
    )
    assert answer.status_code == 200, answer.text
    seed = re.search(r'<textarea name="seed_text"[^>]*>(.*?)</textarea>', answer.text, re.S)
    assert seed
    assert len(seed.group(1).strip()) > 100


def test_save_writes_config_survives_restart_and_lists(open_client, env) -> None:
    answer = open_client.post("/topics", data=NEW, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/topics/troops"
    text = env.config_path.read_text(encoding="utf-8")
    assert "# added by the web app; seed from pasted text" in text
    assert 'seed = ["seeds/troops.txt"]' in text
    assert (env.config_path.parent / "seeds" / "troops.txt").read_text().startswith("North Korea")
    assert any(t.name == "troops" for t in env.runtime.config.topics)  # used at once
    with db.session_scope(env.runtime.sessions) as s:
        assert s.scalar(select(Topic.threshold).where(Topic.name == "troops")) == 0.3
    assert open_client.get("/topics/troops").status_code == 200
    # a restart reads it back from the file
    reloaded = load_config(env.config_path, environ={})
    assert [t.name for t in reloaded.topics] == ["alliance", "sanctions", "troops"]
    open_runtime(reloaded).close()
    listing = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(env.config_path), "topics", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TEST_API_TOKEN": ""},
        check=True,
    )
    assert "troops" in listing.stdout


def test_a_bad_topic_is_refused_and_the_file_kept(open_client, env) -> None:
    before = env.config_path.read_text(encoding="utf-8")
    for bad, message in (
        ({**NEW, "name": "alliance"}, "already exists"),
        ({**NEW, "threshold": "high"}, "threshold: expected a number"),
        ({**NEW, "seed_text": "", "descriptions": ""}, "needs at least one of"),
        ({**NEW, "channels": "pager"}, "is not defined under [alerts]"),
        ({**NEW, "name": "a/b"}, "no &#34;/&#34;"),
    ):
        answer = open_client.post("/topics", data=bad)
        assert answer.status_code == 400, bad
        assert message in answer.text, answer.text
    assert env.config_path.read_text(encoding="utf-8") == before


def test_edit_changes_the_table_in_place(open_client, env) -> None:
    form = open_client.get("/topics/alliance/edit").text
    assert 'name="mode" value="edit"' in form
    assert "North Korea sends troops and arms to Russia" in form
    answer = open_client.post(
        "/topics",
        data={
            "mode": "edit",
            "name": "alliance",
            "descriptions": "North Korea sends troops and arms to Russia\nTroops in Kursk",
            "threshold": "0.42",
            "channels": "console",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    text = env.config_path.read_text(encoding="utf-8")
    assert "threshold = 0.42" in text
    assert "Troops in Kursk" in text
    assert 'name = "sanctions"' in text  # the other topic untouched
    spec = next(t for t in load_config(env.config_path, environ={}).topics if t.name == "alliance")
    assert spec.threshold == 0.42
    assert open_client.get("/topics/nope/edit").status_code == 404


def test_topic_page_draws_days_histogram_threshold_and_false_alarms(open_client, env) -> None:
    with db.session_scope(env.runtime.sessions) as s:
        read_models.record_feedback(s, env.seeded.matches[2], False)
    html = open_client.get("/topics/alliance?days=14").text
    by_day, histogram = html.split('id="hist-h"')
    assert by_day.count("<rect ") == 14
    assert "13 matches, 13 alerted" in by_day  # twelve and the hostile one, all today-ish
    assert 'class="marker"' in histogram  # the threshold line
    assert "North Korean troops story 2" in html.split('id="fa-h"')[1]
    assert open_client.get("/topics/nope").status_code == 404
