"""When scheduled tasks run next: pure, I/O-free, and faithful to upstream Loop.

Upstream (Go) computes ``cron`` schedules with robfig/cron v3, ``interval`` schedules with
``time.ParseDuration`` and ``once`` schedules with ``time.Parse(time.RFC3339, ...)``; the
modules here reproduce those parsers, including their error texts, because the texts are
returned to API clients.
"""

from loop_server.scheduling._cron import CronSchedule
from loop_server.scheduling._duration import parse_go_duration
from loop_server.scheduling._next_run import ScheduleError, next_run
from loop_server.scheduling._rfc3339 import parse_rfc3339

__all__ = [
    "CronSchedule",
    "ScheduleError",
    "next_run",
    "parse_go_duration",
    "parse_rfc3339",
]
