"""Recurring schedules: checking their arguments and computing their runs.

Cron expressions are parsed and evaluated by ``cronsim`` (standard 5 fields), in UTC unless a
time zone is given. Times are the Redis server's (unix ms), so every scheduler agrees on them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ..errors import InvalidArgument
from ..store.serialization import RecurringDef
from ..validation import check_seconds

__all__ = ("check_schedule", "first_run_ms", "next_run_ms", "run_job_id")


#: The shortest interval of a recurring schedule: 10 occurrences a second. Below it a schedule
#: is a job flood (0.001 s made 1,000 jobs a second for ever), not a timetable.
MIN_INTERVAL_SECONDS = 0.1


def check_schedule(
    interval_seconds: float | None, cron: str | None, tz: str | None
) -> tuple[int | None, str | None, str | None]:
    """``(interval_ms, cron, tz)`` once checked; raises :class:`InvalidArgument` naming the fix."""
    if (interval_seconds is None) == (cron is None):
        raise InvalidArgument(
            "give exactly one of interval_seconds and cron, e.g. interval_seconds=60"
            " or cron='*/5 * * * *'"
        )
    if interval_seconds is not None:
        if tz is not None:
            raise InvalidArgument("tz= applies to cron schedules only; drop it for an interval")
        interval = check_seconds(interval_seconds, what="interval_seconds")
        if interval < MIN_INTERVAL_SECONDS:
            raise InvalidArgument(
                f"interval_seconds must be at least {MIN_INTERVAL_SECONDS:g}, got {interval!r}"
                " (every occurrence is a job with its own record): for work that runs"
                " continuously, run a loop in a long job or in your own task"
            )
        return round(interval * 1000), None, None
    if not isinstance(cron, str) or len(cron.split()) != 5:
        raise InvalidArgument(
            f"cron must have 5 fields (minute hour day-of-month month day-of-week), got {cron!r}"
        )
    zone = _zone(tz)
    expression = " ".join(cron.split())
    try:
        CronSim(expression, datetime.now(zone))
    except CronSimError as exc:
        raise InvalidArgument(f"invalid cron expression {cron!r}: {exc}") from exc
    return None, expression, tz


def _zone(tz: str | None) -> ZoneInfo | timezone:
    if tz is None:
        return UTC
    if not isinstance(tz, str):
        raise InvalidArgument(f"tz must be an IANA time zone name like 'Europe/Paris', got {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArgument(
            f"unknown time zone {tz!r}: use an IANA name like 'Europe/Paris'"
        ) from exc


def _next_cron_ms(cron: str, tz: str | None, after_ms: int) -> int:
    """The first cron time strictly after ``after_ms``."""
    start = datetime.fromtimestamp(after_ms / 1000, _zone(tz))
    # cronsim yields times after the start's minute: strictly later than ``start`` either way.
    return int(next(CronSim(cron, start)).timestamp() * 1000)


def first_run_ms(definition: RecurringDef, now_ms: int) -> int:
    """The first run: after ``start_delay``; for cron, the first cron time from then on."""
    start = now_ms + definition.start_delay_ms
    if definition.cron is None:
        return start
    return _next_cron_ms(definition.cron, definition.tz, start - 1)


def next_run_ms(definition: RecurringDef, due_ms: int, now_ms: int) -> int:
    """The run after the one due at ``due_ms``, later than ``now_ms``: occurrences missed while
    no scheduler ran are skipped, so the missed run happens once, not once per missed tick."""
    if definition.interval_ms is not None:
        missed = max(0, now_ms - due_ms) // definition.interval_ms
        return due_ms + (missed + 1) * definition.interval_ms
    assert definition.cron is not None
    return _next_cron_ms(definition.cron, definition.tz, max(due_ms, now_ms))


def run_job_id(schedule_id: str, due_ms: int) -> str:
    """Each occurrence's job id: the schedule's id and its due time."""
    return f"{schedule_id}@{due_ms}"
