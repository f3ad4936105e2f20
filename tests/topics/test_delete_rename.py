"""config_edit's delete and rename of a ``[[topics]]`` table: only that table's lines (or its
name) change, every other byte of config.toml stays, comments included; a file the line cut
cannot handle still gets the right values (tomlkit's rendering); a failure writes nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from monitor import config_edit
from monitor.errors import ConfigError

HEAD = """# monitor settings, with our notes
[database]
url = "sqlite:///monitor.db"  # next to this file

[alerts.console]
type = "console"

"""
ALLIANCE = """# Watching the alliance
[[topics]]
name = "alliance"  # short
# one description is enough
descriptions = ["North Korea sends troops and arms to Russia"]
require = [
    ["north korea*", "pyongyang"],
]

"""
SANCTIONS = """# Sanctions: reviewed monthly
[[topics]]
name = "sanctions"
descriptions = ["Sanctions on North Korea and Russia"]
# end of topics
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_delete_cuts_the_tables_lines_and_keeps_every_comment_around_it(tmp_path) -> None:
    path = _write(tmp_path, HEAD + ALLIANCE + SANCTIONS)
    config = config_edit.delete_topic_table(path, "alliance")
    assert [t.name for t in config.topics] == ["sanctions"]
    assert path.read_text(encoding="utf-8") == HEAD + "# Watching the alliance\n\n" + SANCTIONS


def test_delete_of_the_last_table_keeps_the_comments_before_and_after(tmp_path) -> None:
    path = _write(tmp_path, HEAD + ALLIANCE + SANCTIONS + "\n[polling]\ninterval = '10m'\n")
    config_edit.delete_topic_table(path, "sanctions")
    expected = HEAD + ALLIANCE + "# Sanctions: reviewed monthly\n\n# end of topics\n"
    assert path.read_text(encoding="utf-8") == expected + "\n[polling]\ninterval = '10m'\n"


def test_delete_of_the_only_table_leaves_no_topics(tmp_path) -> None:
    path = _write(tmp_path, HEAD + SANCTIONS)
    config = config_edit.delete_topic_table(path, "sanctions")
    assert config.topics == []
    assert (
        path.read_text(encoding="utf-8")
        == HEAD + "# Sanctions: reviewed monthly\n\n# end of topics\n"
    )


def test_a_header_inside_a_string_falls_back_to_tomlkit_with_the_right_values(tmp_path) -> None:
    tricky = ALLIANCE.replace(
        'descriptions = ["North Korea sends troops and arms to Russia"]',
        'descriptions = ["""troops\n[[topics]]\nand arms"""]',
    )
    path = _write(tmp_path, HEAD + tricky + SANCTIONS)
    config_edit.delete_topic_table(path, "sanctions")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert [t["name"] for t in data["topics"]] == ["alliance"]
    assert data["topics"][0]["descriptions"] == ["troops\n[[topics]]\nand arms"]
    assert "# monitor settings, with our notes" in path.read_text(encoding="utf-8")


def test_rename_changes_the_name_value_only(tmp_path) -> None:
    original = HEAD + ALLIANCE + SANCTIONS
    path = _write(tmp_path, original)
    config = config_edit.rename_topic_table(path, "alliance", "pact")
    assert [t.name for t in config.topics] == ["pact", "sanctions"]
    assert path.read_text(encoding="utf-8") == original.replace(
        'name = "alliance"', 'name = "pact"'
    )


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            lambda p: config_edit.delete_topic_table(p, "nowhere"),
            'no [[topics]] table named "nowhere"',
        ),
        (
            lambda p: config_edit.rename_topic_table(p, "nowhere", "x"),
            'no [[topics]] table named "nowhere"',
        ),
        (lambda p: config_edit.rename_topic_table(p, "alliance", "sanctions"), "used twice"),
    ],
    ids=["delete-unknown", "rename-unknown", "rename-taken"],
)
def test_refusals_leave_the_file_byte_for_byte(tmp_path, change, said) -> None:
    original = HEAD + ALLIANCE + SANCTIONS
    path = _write(tmp_path, original)
    with pytest.raises(ConfigError, match=said.replace("[", r"\[").replace("]", r"\]")):
        change(path)
    assert path.read_text(encoding="utf-8") == original
