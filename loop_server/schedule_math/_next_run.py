"""Next-run computation for the three task types, with upstream's error texts.

The messages are the API's 400 bodies (SPEC A.3), so they follow upstream's wrapping
exactly: ``calculating next run: parsing <kind> "<schedule>": <Go detail>``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from loop_server.schedule_math._cron import CronSchedule
from loop_server.schedule_math._duration import ns_to_timedelta, parse_go_duration_ns
from loop_server.schedule_math._gotext import go_quote
from loop_server.schedule_math._rfc3339 import parse_rfc3339

_PREFIX = "calculating next run: "
_ONCE_HINT = "must be RFC3339 (e.g. 2026-02-09T14:30:00Z)"


class ScheduleError(ValueError):
    """A schedule or task type that cannot be scheduled; ``str(err)`` is the client message."""


def next_run(task_type: str, schedule: str, now: datetime) -> datetime:
    """When a task of ``task_type`` with ``schedule`` should next run after ``now``.

    ``now`` should be timezone-aware (a naive value is taken to be UTC); the result is an
    aware UTC datetime. Raises :class:`ScheduleError` for anything that cannot be scheduled.
    """
    moment = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    if task_type == "cron":
        return _next_cron(schedule, moment)
    if task_type == "interval":
        return _next_interval(schedule, moment)
    if task_type == "once":
        return _next_once(schedule)
    raise ScheduleError(f"{_PREFIX}unknown task type {go_quote(task_type)}")


def _next_cron(schedule: str, now: datetime) -> datetime:
    try:
        parsed = CronSchedule.parse(schedule)
    except ValueError as err:
        raise ScheduleError(f"{_PREFIX}parsing cron schedule {go_quote(schedule)}: {err}") from err
    upcoming = parsed.next_after(now)
    if upcoming is None:
        # Upstream would store Go's zero time and the task would fire at once, on every
        # poll; refusing it is the useful answer.
        raise ScheduleError(f"{_PREFIX}cron schedule {go_quote(schedule)} never fires")
    return upcoming


def _next_interval(schedule: str, now: datetime) -> datetime:
    prefix = f"{_PREFIX}parsing interval {go_quote(schedule)}: "
    try:
        nanoseconds = parse_go_duration_ns(schedule)
    except ValueError as err:
        raise ScheduleError(f"{prefix}{err}") from err
    if nanoseconds <= 0:
        # Upstream accepts these and the task then fires on every poll, forever.
        raise ScheduleError(f"{prefix}interval must be positive")
    try:
        return now + ns_to_timedelta(nanoseconds)
    except OverflowError:
        raise ScheduleError(f"{prefix}interval is too long") from None


def _next_once(schedule: str) -> datetime:
    try:
        return parse_rfc3339(schedule)
    except ValueError as err:
        raise ScheduleError(
            f"{_PREFIX}parsing once schedule {go_quote(schedule)}: {_ONCE_HINT}: {err}"
        ) from err
