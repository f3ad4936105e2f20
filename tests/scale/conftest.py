"""Daemons started by a scale test are always killed at its end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemonproc import DaemonProc
from tests.support.httpserver import LocalServer


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[[Path], DaemonProc]]:
    started: list[DaemonProc] = []

    def start(config: Path) -> DaemonProc:
        daemon = DaemonProc(config, tmp_path / f"worker-{len(started)}.log").start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill9()
