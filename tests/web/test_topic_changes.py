"""Deleting and renaming a topic from the browser: a confirmation page first (no JavaScript),
then config.toml changed through tomlkit with every comment outside the table kept, and the
stored topic in step: deleted, its row inactive with its matches kept; renamed, its row
renamed so the matches follow. Errors are one line; the read-only token gets 403."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import func, select

from monitor.config import load_config
from monitor.pipeline import topic_changes
from monitor.store import db, queries
from monitor.store.models import Match, Topic
from tests.web.conftest import ADMIN, READER

NOTES = {  # the test config's lines, and the same lines with comments around or in them
    "[database]\n": "# Our monitor: keep these notes\n[database]\n",
    'heartbeat_max_age = "60s"\n': 'heartbeat_max_age = "60s"  # the test pace\n',
    '[[topics]]\nname = "alliance"\n': (
        '# Watching the alliance\n[[topics]]\nname = "alliance"  # short name\n'
        "# one description is enough\n"
    ),
    '[[topics]]\nname = "sanctions"\n': (
        '# Sanctions: reviewed every month\n[[topics]]\nname = "sanctions"\n'
    ),
    'descriptions = ["Sanctions on North Korea and Russia"]\n': (
        'descriptions = ["Sanctions on North Korea and Russia"]\n# end of topics\n'
    ),
}


def _commented(env) -> str:
    """The test config with comments around and inside the topics (same values)."""
    text = env.config_path.read_text(encoding="utf-8")
    for line, noted in NOTES.items():
        assert line in text
        text = text.replace(line, noted)
    env.config_path.write_text(text, encoding="utf-8")
    return text


def _topic(env, name: str) -> tuple[bool, int] | None:
    """(active, stored matches) of the stored topic ``name``."""
    with db.session_scope(env.runtime.sessions) as s:
        row = s.scalar(select(Topic).where(Topic.name == name))
        if row is None:
            return None
        count = s.scalar(select(func.count()).select_from(Match).where(Match.topic_id == row.id))
        return row.active, int(count or 0)


def test_delete_asks_first_then_removes_the_table_and_keeps_the_matches(open_client, env):
    original = _commented(env)
    active, matches = _topic(env, "alliance")
    assert active
    assert matches > 0
    confirm = open_client.get("/topics/alliance/delete")
    assert confirm.status_code == 200
    assert f"Its {matches} stored matches" in confirm.text
    assert "not in config" in confirm.text  # what config sync does with it, said on the page
    assert env.config_path.read_text(encoding="utf-8") == original  # a GET changes nothing

    answer = open_client.post("/topics/alliance/delete")
    assert answer.status_code == 200, answer.text
    assert f"its {matches} stored matches are kept" in answer.text
    text = env.config_path.read_text(encoding="utf-8")
    assert 'name = "alliance"' not in text
    assert "# one description is enough" not in text  # the table's own lines went with it
    for kept in (
        "# Our monitor: keep these notes",
        "# the test pace",
        "# Watching the alliance",
        "# Sanctions: reviewed every month",
        "# end of topics",
    ):
        assert kept in text, kept
    assert [t.name for t in load_config(env.config_path, environ={}).topics] == ["sanctions"]
    assert _topic(env, "alliance") == (False, matches)  # inactive, history kept
    assert [t.name for t in env.runtime.config.topics] == ["sanctions"]  # in use at once
    listing = open_client.get("/topics")
    assert "(not in config)" in listing.text  # still listed, with its history


def test_rename_moves_the_stored_matches_with_the_name(open_client, env):
    original = _commented(env)
    _, matches = _topic(env, "alliance")
    form = open_client.get("/topics/alliance/rename")
    assert form.status_code == 200
    assert 'name="new_name"' in form.text
    answer = open_client.post("/topics/alliance/rename", data={"new_name": "pact"})
    assert answer.status_code == 200, answer.text  # followed to the renamed topic's page
    assert str(answer.url).endswith("/topics/pact")
    text = env.config_path.read_text(encoding="utf-8")
    assert text == original.replace('name = "alliance"', 'name = "pact"')
    assert _topic(env, "pact") == (True, matches)
    assert _topic(env, "alliance") is None  # no orphaned row left behind
    with db.session_scope(env.runtime.sessions) as s:  # a restart's config sync agrees
        queries.sync_config(s, load_config(env.config_path, environ={}))
    assert _topic(env, "pact") == (True, matches)
    assert _topic(env, "alliance") is None


def test_rename_errors_are_one_line_and_change_nothing(open_client, env):
    original = _commented(env)
    cases = {
        "/topics/nowhere/rename": ("pact", 404, 'no topic "nowhere" in the config'),
        "/topics/alliance/rename": ("sanctions", 400, 'topic "sanctions" already exists'),
    }
    for path, (new, status, said) in cases.items():
        answer = open_client.post(path, data={"new_name": new})
        assert answer.status_code == status, answer.text
        assert said in html.unescape(answer.text)
    for bad, said in [("", "must be non-empty"), ("a/b", 'no "/"'), ("x\ny", "on one line")]:
        answer = open_client.post("/topics/alliance/rename", data={"new_name": bad})
        assert answer.status_code == 400
        assert said in html.unescape(answer.text)
    assert open_client.post("/topics/nowhere/delete").status_code == 404
    assert open_client.get("/topics/nowhere/delete").status_code == 404
    assert env.config_path.read_text(encoding="utf-8") == original
    assert _topic(env, "alliance")[0] is True


def test_rename_onto_a_removed_topics_history_is_refused(open_client, env):
    """A stored, inactive topic keeps its name: renaming onto it would merge two histories."""
    original = _commented(env)
    with db.session_scope(env.runtime.sessions) as s:
        s.add(Topic(name="old-pact", threshold=0.5, active=False))
    answer = open_client.post("/topics/alliance/rename", data={"new_name": "old-pact"})
    assert answer.status_code == 400
    assert "taken by a topic removed from the config" in html.unescape(answer.text)
    assert env.config_path.read_text(encoding="utf-8") == original  # rolled back together
    assert _topic(env, "alliance")[0] is True


def test_the_read_only_token_cannot_delete_or_rename(make_client, env):
    original = env.config_path.read_text(encoding="utf-8")
    reader = make_client(READER)
    for path in ("/topics/alliance/delete", "/topics/alliance/rename"):
        assert reader.get(path).status_code == 403
        answer = reader.post(path, data={"new_name": "pact"})
        assert answer.status_code == 403
        assert "read-only token" in answer.text
    assert "/topics/alliance/delete" not in reader.get("/topics").text  # no links shown
    admin = make_client(ADMIN)
    assert "/topics/alliance/delete" in admin.get("/topics").text
    assert "/topics/alliance/rename" in admin.get("/topics/alliance/edit").text
    assert env.config_path.read_text(encoding="utf-8") == original
    assert _topic(env, "alliance")[0] is True


def test_a_rename_whose_commit_fails_restores_the_file_and_keeps_the_row(env, monkeypatch):
    """The file is written before the database commits; when the transaction fails after the
    write, config.toml is written back byte for byte and the stored topic keeps its name."""
    original = _commented(env)
    before = _topic(env, "alliance")

    def failing_sync(*_args, **_kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(topic_changes.queries, "sync_topics", failing_sync)
    with pytest.raises(RuntimeError, match="database went away"):
        topic_changes.rename_topic(env.runtime, "alliance", "pact")
    assert env.config_path.read_text(encoding="utf-8") == original
    assert _topic(env, "alliance") == before
    assert _topic(env, "pact") is None
