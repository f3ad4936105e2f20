"""When to poll a feed next: pure functions of what the last poll learned.

* After a success (or a 304) the feed waits its interval, lengthened (never shortened) by the
  feed's RSS ``<ttl>`` or the response's ``Cache-Control: max-age``, kept within
  ``[min_interval, max_interval]``.
* After an error it waits ``interval * 2**(errors-1)``, capped at ``error_backoff_cap``; a
  ``Retry-After`` from a 429/503 is honoured when longer (up to the same cap). Errors never stop
  polling: the cap is reached and the feed keeps being tried at that pace until it recovers,
  which resets the count.
* Every delay carries jitter (-10%..+10%), and a feed's first success draws its delay anywhere
  in ``[min_interval, interval]``, so feeds added together (a fresh install of 1,000 feeds) are
  spread over the interval from then on, and a restart finds only the few that are due.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.config import PollingConfig

JITTER_FRACTION = 0.1


@dataclass(frozen=True, slots=True)
class Bounds:
    """The scheduling settings, in seconds."""

    interval_s: float
    min_interval_s: float
    max_interval_s: float
    error_backoff_cap_s: float

    @classmethod
    def from_config(cls, config: PollingConfig, interval_s: float | None = None) -> Bounds:
        return cls(
            interval_s=interval_s or config.interval,
            min_interval_s=config.min_interval,
            max_interval_s=config.max_interval,
            error_backoff_cap_s=config.error_backoff_cap,
        )


def jittered(
    delay_s: float, rng: random.Random | None = None, fraction: float = JITTER_FRACTION
) -> float:
    """``delay_s`` moved by a random amount of at most ``fraction`` either way."""
    spread = rng.uniform(-fraction, fraction) if rng else random.uniform(-fraction, fraction)
    return delay_s * (1 + spread)


def success_delay(
    bounds: Bounds, *, ttl_s: float | None = None, max_age_s: float | None = None
) -> float:
    """Seconds until the next poll after a success: interval, lengthened by ttl / max-age."""
    delay = max(bounds.interval_s, ttl_s or 0.0, max_age_s or 0.0)
    return min(max(delay, bounds.min_interval_s), max(bounds.max_interval_s, bounds.min_interval_s))


def error_delay(
    bounds: Bounds, consecutive_errors: int, *, retry_after_s: float | None = None
) -> float:
    """Seconds until the next try after the ``consecutive_errors``-th error in a row (>= 1)."""
    exponent = min(max(consecutive_errors, 1) - 1, 30)
    base = max(bounds.interval_s, bounds.min_interval_s)
    delay = min(base * float(2**exponent), bounds.error_backoff_cap_s)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, bounds.error_backoff_cap_s))
    return delay


def next_poll_after_success(
    now: datetime,
    bounds: Bounds,
    *,
    ttl_s: float | None = None,
    max_age_s: float | None = None,
    rng: random.Random | None = None,
    spread: bool = False,
) -> datetime:
    """The next poll after a success. ``spread`` (used on a feed's first success) draws the
    delay anywhere in ``[min_interval, delay]`` instead of ``delay +- 10%``: feeds added
    together (a fresh install, a restart with new feeds) then fall evenly over one interval
    instead of coming due again in the same minute, cycle after cycle."""
    delay = success_delay(bounds, ttl_s=ttl_s, max_age_s=max_age_s)
    if spread:
        low = min(bounds.min_interval_s, delay)
        delay = rng.uniform(low, delay) if rng else random.uniform(low, delay)
    else:
        delay = jittered(delay, rng)
    return now + timedelta(seconds=max(delay, bounds.min_interval_s * (1 - JITTER_FRACTION)))


def next_poll_after_error(
    now: datetime,
    bounds: Bounds,
    consecutive_errors: int,
    *,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> datetime:
    delay = error_delay(bounds, consecutive_errors, retry_after_s=retry_after_s)
    delay = jittered(delay, rng)
    if retry_after_s is not None:  # never earlier than the server asked
        delay = max(delay, min(retry_after_s, bounds.error_backoff_cap_s))
    return now + timedelta(seconds=delay)
