"""Pure scheduling: intervals, ttl / max-age within bounds, backoff with a cap, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from monitor.feeds.fetch import parse_max_age
from monitor.feeds.schedule import (
    Bounds,
    error_delay,
    next_poll_after_error,
    next_poll_after_success,
    success_delay,
)
from monitor.http_headers import parse_retry_after

B = Bounds(interval_s=900, min_interval_s=60, max_interval_s=21600, error_backoff_cap_s=21600)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_success_delay_is_lengthened_within_bounds() -> None:
    assert success_delay(B) == 900
    assert success_delay(B, ttl_s=3600) == 3600
    assert success_delay(B, max_age_s=7200, ttl_s=60) == 7200
    assert success_delay(B, ttl_s=10**7) == 21600  # max_interval
    assert success_delay(B, ttl_s=30) == 900  # never shortened
    tiny = Bounds(interval_s=5, min_interval_s=60, max_interval_s=600, error_backoff_cap_s=600)
    assert success_delay(tiny) == 60


def test_error_backoff_doubles_up_to_the_cap_and_never_stops() -> None:
    delays = [error_delay(B, n) for n in range(1, 10)]
    assert delays[:4] == [900, 1800, 3600, 7200]
    assert delays[-1] == 21600
    assert error_delay(B, 10_000) == 21600  # any error count still schedules a poll


def test_retry_after_wins_when_longer_but_is_capped() -> None:
    assert error_delay(B, 1, retry_after_s=5000) == 5000
    assert error_delay(B, 1, retry_after_s=10) == 900
    assert error_delay(B, 1, retry_after_s=10**9) == 21600
    rng = random.Random(1)
    for _ in range(50):
        at = next_poll_after_error(NOW, B, 1, retry_after_s=5000, rng=rng)
        assert at >= NOW + timedelta(seconds=5000)


def test_jitter_spreads_feeds() -> None:
    rng = random.Random(7)
    times = {next_poll_after_success(NOW, B, rng=rng) for _ in range(100)}
    assert len(times) > 90
    assert min(times) >= NOW + timedelta(seconds=810)
    assert max(times) <= NOW + timedelta(seconds=990)


def test_retry_after_and_max_age_headers() -> None:
    assert parse_retry_after("120") == 120
    at = parse_retry_after("Wed, 25 Nov 2026 13:00:00 GMT", now=NOW)
    assert at == 3600
    assert parse_retry_after("Wed, 25 Nov 2026 11:00:00 GMT", now=NOW) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_max_age("public, max-age=600") == 600
    assert parse_max_age("no-cache, max-age=600") is None
    assert parse_max_age("") is None


def test_first_success_spreads_feeds_over_the_interval() -> None:
    rng = random.Random(3)
    delays = sorted(
        (next_poll_after_success(NOW, B, rng=rng, spread=True) - NOW).total_seconds()
        for _ in range(200)
    )
    assert delays[0] >= 54
    assert delays[-1] <= 900
    assert delays[20] < 250
    assert delays[-20] > 700
