"""The command line as a user meets it: help with examples, clear one-line errors, feeds and
topics commands against a real SQLite file, config selection by flag and environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

WriteConfig = Callable[..., Path]


def monitor(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def config_file(write_config: WriteConfig) -> Path:
    return write_config(
        """
        [database]
        url = "sqlite:///state/monitor.db"

        [[feeds]]
        name = "Local"
        url = "http://127.0.0.1:9/feed.xml"

        [[topics]]
        name = "alliance"
        descriptions = ["North Korea and Russia"]
        require = [["north korea"], ["russia"]]
        threshold = 0.4
        """
    )


def test_help_explains_every_command_with_an_example() -> None:
    result = monitor("--help")
    assert result.returncode == 0
    for command in ("run", "config", "db", "feeds", "topics"):
        assert command in result.stdout
    for args in (
        ["run"],
        ["config", "check"],
        ["db", "upgrade"],
        ["feeds", "list"],
        ["feeds", "add"],
        ["feeds", "remove"],
        ["topics", "list"],
    ):
        help_text = monitor(*args, "--help").stdout
        assert "Example:" in help_text, f"`monitor {' '.join(args)} --help` has no example"


def test_version() -> None:
    result = monitor("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("monitor ")


def test_config_check_ok_and_broken(config_file: Path, write_config: WriteConfig) -> None:
    ok = monitor("--config", str(config_file), "config", "check")
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    broken = write_config('[polling]\ninterval = "fast"\n', name="broken.toml")
    result = monitor("--config", str(broken), "config", "check")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f'error: {broken}:2: polling.interval: expected a duration like "15m", got "fast"'
    )
    assert "Traceback" not in result.stderr


def test_config_from_environment_variable(config_file: Path, tmp_path: Path) -> None:
    result = monitor("config", "check", cwd=tmp_path, env={"MONITOR_CONFIG": str(config_file)})
    assert result.returncode == 0, result.stderr


def test_missing_default_config_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "config", "check"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "config.toml: file not found" in result.stderr


def test_db_upgrade_creates_the_file_next_to_the_config(config_file: Path) -> None:
    result = monitor("--config", str(config_file), "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert (config_file.parent / "state" / "monitor.db").is_file()
    assert "is at revision" in result.stdout


def test_feeds_list_add_remove(config_file: Path) -> None:
    listed = monitor("--config", str(config_file), "feeds", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    feeds = json.loads(listed.stdout)
    assert [f["url"] for f in feeds] == ["http://127.0.0.1:9/feed.xml"]
    assert feeds[0]["health"] == "new"

    added = monitor(
        "--config",
        str(config_file),
        "feeds",
        "add",
        "http://127.0.0.1:9/other.xml",
        "--no-discover",
        "--name",
        "Other",
    )
    assert added.returncode == 0, added.stderr
    table = monitor("--config", str(config_file), "feeds", "list").stdout
    assert "Other" in table
    assert "HEALTH" in table

    removed = monitor("--config", str(config_file), "feeds", "remove", "Other")
    assert removed.returncode == 0, removed.stderr
    missing = monitor("--config", str(config_file), "feeds", "remove", "Other")
    assert missing.returncode == 2
    assert "feed 2 is already removed" in missing.stderr


def test_topics_list_csv(config_file: Path) -> None:
    result = monitor("--config", str(config_file), "topics", "list", "--format", "csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("name,threshold")
    assert lines[1].startswith("alliance,0.4")


def _without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


def test_read_only_commands_need_no_channel_secret(write_config: WriteConfig) -> None:
    """An unset ${WEBHOOK_SECRET} stops only what uses the channel: reading works, sending
    (alerts test, the daemon) fails with one line naming the file, line, field and variable,
    and `config check` reports it."""
    from datetime import UTC, datetime

    from monitor.config import load_config
    from monitor.pipeline.runtime import open_runtime
    from monitor.store import db
    from monitor.store.models import Article, Feed

    path = write_config(
        """
        [database]
        url = "sqlite:///monitor.db"

        [alerts.ops]
        type = "webhook"
        url = "http://127.0.0.1:9/hook"
        secret = "${WEBHOOK_SECRET}"

        [[topics]]
        name = "alliance"
        descriptions = ["North Korea and Russia"]
        channels = ["ops"]
        """
    )
    rt = open_runtime(load_config(path, environ={}))
    try:
        with db.session_scope(rt.sessions) as session:
            feed = Feed(url="http://127.0.0.1:9/feed.xml", name="Local")
            session.add(feed)
            session.flush()
            session.add(
                Article(
                    feed_id=feed.id,
                    entry_key="k",
                    title="Kim meets Putin",
                    published_at=datetime.now(UTC),
                )
            )
    finally:
        rt.close()
    env = {**_without("WEBHOOK_SECRET"), "PYTHONPATH": str(REPO_ROOT)}
    for args in (["matches"], ["show", "a1"], ["topics", "list"], ["feeds", "list"]):
        result = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(path), *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, (args, result.stderr)
    assert "Kim meets Putin" in monitor("--config", str(path), "show", "a1", env=env).stdout
    expected = (
        f"error: {path}:7: alerts.ops.secret: environment variable WEBHOOK_SECRET is not set "
        "(set it, or write ${WEBHOOK_SECRET:-default})"
    )
    for args in (["alerts", "test", "--channel", "ops"], ["run", "--once"], ["config", "check"]):
        result = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(path), *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip() == expected, args
