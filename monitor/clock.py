"""The one clock: every stage, the store and the daemon ask it what time it is.

Real time is :func:`utcnow` (aware UTC). A :class:`Clock` lives on each runtime
(``runtime.resources.clock``); tests and benches give it a source of their own, and every
decision about *when* (poll times, budgets, digests, quiet hours, retries, give-up, leases)
follows that source, so schedules are tested without sleeping. Store functions take ``now``
from their caller or fall back to :func:`utcnow`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Real time, aware UTC."""
    return datetime.now(UTC)


class Clock:
    """``now()`` from ``source`` (real time by default); a test freezes or advances it."""

    def __init__(self, source: Callable[[], datetime] = utcnow) -> None:
        self.source = source

    def now(self) -> datetime:
        return self.source()
