"""Pure time arithmetic for digests and quiet hours, in the channel's time zone.

Digest schedules: ``"hourly"`` (at the top of every hour) or ``"daily HH:MM"``. A *slot* is the
moment a digest is due; :func:`digest_slot` gives the latest slot at or before ``now``, and a
digest for a slot holds the alerts queued before it. Quiet hours ``"22:00-07:00"`` may wrap
midnight; :func:`quiet_until` says when the current quiet period ends (or None).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitor.config import DAILY_SCHEDULE_RE as _DAILY
from monitor.config import QUIET_HOURS_RE as _QUIET
from monitor.config import check_schedule

__all__ = ["digest_slot", "quiet_until"]


def digest_slot(now: datetime, schedule: str, tz: str) -> datetime:
    """The latest digest time at or before ``now`` (aware UTC in, aware UTC out)."""
    local = now.astimezone(ZoneInfo(tz))
    schedule = check_schedule(schedule)
    if schedule == "hourly":
        slot = local.replace(minute=0, second=0, microsecond=0)
    else:
        match = _DAILY.match(schedule)
        assert match is not None
        at = time(int(match.group(1)), int(match.group(2)))
        slot = datetime.combine(local.date(), at, tzinfo=local.tzinfo)
        if slot > local:
            slot = datetime.combine(local.date() - timedelta(days=1), at, tzinfo=local.tzinfo)
    return slot.astimezone(UTC)


def quiet_until(now: datetime, quiet_hours: str, tz: str) -> datetime | None:
    """When the quiet period containing ``now`` ends, or None when ``now`` is not quiet."""
    match = _QUIET.match(quiet_hours.strip()) if quiet_hours else None
    if not match:
        return None
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    start = time(int(match.group(1)), int(match.group(2)))
    end = time(int(match.group(3)), int(match.group(4)))
    if start == end:
        return None
    current = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= current < end
        end_date = local.date()
    else:  # wraps midnight
        inside = current >= start or current < end
        end_date = local.date() + timedelta(days=1) if current >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_date, end, tzinfo=zone).astimezone(UTC)
