"""Exactly-once under crashes and concurrency.

A dispatcher *process* is killed with SIGKILL while a send is in flight, then restarted: every
alert arrives, and the only repeat at the receiver is the interrupted send, carrying the same
idempotency key, so a receiver that dedupes by key sees each alert exactly once. On PostgreSQL,
several dispatchers running at once never send one alert twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor import clock as monitor_clock
from monitor.pipeline.delivery import dispatch_due
from monitor.store import db
from monitor.store.models import Delivery, DeliveryAttempt
from tests.alerts.conftest import Env
from tests.support.httpserver import LocalServer, Recorded, Reply

ALERTS = 12
KILL_AT = 5


class StallingReceiver:
    """Answers quickly, except request number KILL_AT, which it holds until released."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.stalled = threading.Event()
        self.release = threading.Event()

    def __call__(self, _request: Recorded) -> Reply:
        with self.lock:
            self.count += 1
            number = self.count
        if number == KILL_AT:
            self.stalled.set()
            self.release.wait(10)
        return Reply(status=200, body=b"ok")


@pytest.fixture
def receiver() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


def channel(server: LocalServer) -> str:
    return f"""
    [alerts.hook]
    type = "webhook"
    url = "{server.url("/hook")}"
    timeout = "2s"  # the in-flight row's lease is 2 x timeout + 5 s
    """


def dispatcher(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), "alerts", "dispatch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )


@pytest.mark.slow
def test_sigkill_mid_send_then_restart_delivers_each_alert_exactly_once(
    make_env: Callable[..., Env], receiver: LocalServer, tmp_path: Path
) -> None:
    stall = StallingReceiver()
    receiver.route("/hook", stall)
    env = make_env(channel(receiver), lease="1s")
    # rows are created at the real time: the dispatcher processes use the real clock
    env.runtime.resources.clock = monitor_clock.Clock()
    expected = [f"match-{env.match(f'alert {i}')}-hook" for i in range(ALERTS)]
    config = tmp_path / "config.toml"

    first = dispatcher(config)
    try:
        assert stall.stalled.wait(60), "the dispatcher never reached the stalled send"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        stall.release.set()
    assert first.returncode == -signal.SIGKILL
    statuses = Counter(d.status for d in env.deliveries())
    assert statuses["sending"] >= 1
    assert statuses["sent"] == KILL_AT - 1

    # a restart after a crash waits for the dead worker's lease on the in-flight row to end
    with db.session_scope(env.runtime.sessions) as session:
        lease_ends = max(d.lease_until for d in session.scalars(select(Delivery)) if d.lease_until)
    time.sleep(max(0.0, (lease_ends - datetime.now(UTC)).total_seconds()) + 0.2)
    second = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "alerts", "dispatch"],
        capture_output=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )
    assert second.returncode == 0, second.stderr.decode()

    received = [r.header("Idempotency-Key") for r in receiver.requests_to("/hook")]
    counts = Counter(received)
    assert set(counts) == set(expected)  # nothing lost
    assert [k for k, n in counts.items() if n > 1] == [expected[KILL_AT - 1]]  # only in-flight
    assert counts[expected[KILL_AT - 1]] == 2
    first_seen = list(dict.fromkeys(received))
    assert first_seen == expected  # order kept
    assert {d.status for d in env.deliveries()} == {"sent"}
    with db.session_scope(env.runtime.sessions) as session:
        errors = session.scalars(select(DeliveryAttempt.error).where(~DeliveryAttempt.ok)).all()
    assert len(errors) == 1
    assert errors[0].startswith("interrupted")


def test_concurrent_dispatchers_on_postgresql_never_send_twice(
    make_env: Callable[..., Env], receiver: LocalServer, pg_url: str
) -> None:
    receiver.route("/hook", Reply(status=200, body=b"ok", delay_s=0.02))
    env = make_env(channel(receiver), db_url=pg_url)
    expected = {f"match-{env.match(f'alert {i}')}-hook" for i in range(40)}
    workers = [make_env(channel(receiver), db_url=pg_url, clock=env.clock) for _ in range(3)]
    for number, worker in enumerate(workers):
        worker.runtime.worker_id = f"worker-{number}"
    reports = []
    threads = [
        threading.Thread(target=lambda w=w: reports.append(dispatch_due(w.runtime)))
        for w in workers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    received = Counter(r.header("Idempotency-Key") for r in receiver.requests_to("/hook"))
    assert set(received) == expected
    assert set(received.values()) == {1}
    assert sum(r.sent for r in reports) == 40
