"""The daemon's lifecycle as an operator sees it: it starts, keeps running, stops cleanly on
SIGTERM/SIGINT within the grace period, and a second daemon refuses to share a SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

WriteConfig = Callable[..., Path]

CONFIG = """
[database]
url = "sqlite:///monitor.db"

[polling]
tick = "1s"

[[feeds]]
url = "http://127.0.0.1:9/unreachable.xml"
"""


def start_daemon(config: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), "run", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not seen; output so far:\n{''.join(lines)}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_starts_runs_and_stops_cleanly(write_config: WriteConfig, signum: int) -> None:
    config = write_config(CONFIG)
    proc = start_daemon(config)
    try:
        lines = wait_for_line(proc, "daemon started")
        assert any("feeds=1" in line for line in lines)
        time.sleep(2.5)  # a few ticks
        assert proc.poll() is None, "daemon exited on its own"
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "stop requested" in rest
    assert "daemon stopped" in rest
    assert "Traceback" not in rest


def test_second_daemon_on_the_same_sqlite_file_refuses(write_config: WriteConfig) -> None:
    config = write_config(CONFIG)
    first = start_daemon(config)
    try:
        wait_for_line(first, "daemon started")
        second = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(config), "run"],
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert second.returncode == 2
        assert "already used by a running monitor daemon" in second.stderr
        assert "move to PostgreSQL" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 0


def test_json_logs(write_config: WriteConfig) -> None:
    import json

    config = write_config(CONFIG)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "--config",
            str(config),
            "--log-format",
            "json",
            "run",
            "--once",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(r["msg"] == "cycle finished" for r in records)


def test_health_command_follows_the_heartbeat(write_config: WriteConfig) -> None:
    config = write_config(CONFIG)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def health() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(config), "health", "--max-age", "5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "db", "upgrade"],
        env=env,
        check=True,
        capture_output=True,
    )
    assert health().returncode == 1
    proc = start_daemon(config)
    try:
        wait_for_line(proc, "daemon started")
        time.sleep(1.5)
        result = health()
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("healthy:")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_run_once_beside_a_daemon_on_the_same_sqlite_file_refuses(
    write_config: WriteConfig,
) -> None:
    """`run --once` takes the same SQLite owner lock as a daemon, so it cannot claim a live
    daemon's work; once the daemon is gone it runs."""
    config = write_config(CONFIG)
    daemon = start_daemon(config)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    once = [sys.executable, "-m", "monitor", "--config", str(config), "run", "--once"]
    try:
        wait_for_line(daemon, "daemon started")
        beside = subprocess.run(
            once, env=env, capture_output=True, text=True, timeout=120, check=False
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
    assert beside.returncode == 2, beside.stderr
    assert "already used by a running monitor daemon" in beside.stderr
    assert "Traceback" not in beside.stderr
    alone = subprocess.run(once, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.startswith("polled ")
