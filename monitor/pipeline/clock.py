"""The delivery stage's clock: real UTC time, or a test's controllable clock.

Tests (and benches) put a zero-argument callable returning an aware UTC datetime in
``runtime.resources["clock"]``; everything that decides *when* (budgets, digests, quiet hours,
retry times, give-up) asks :func:`now`, so schedules can be tested without sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.pipeline.runtime import Runtime

CLOCK_KEY = "clock"


def now(runtime: Runtime) -> datetime:
    clock = runtime.resources.get(CLOCK_KEY)
    return clock() if callable(clock) else datetime.now(UTC)
