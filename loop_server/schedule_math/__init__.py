"""The schedule maths: when a scheduled task runs next. Pure, I/O-free, and faithful to
upstream Loop. (The loop that runs tasks on time is ``loop_server.scheduler``.)

Upstream (Go) computes ``cron`` schedules with robfig/cron v3, ``interval`` schedules with
``time.ParseDuration`` and ``once`` schedules with ``time.Parse(time.RFC3339, ...)``; the
modules here reproduce those parsers, including their error texts, because the texts are
returned to API clients.
"""

from loop_server.schedule_math._cron import CronSchedule
from loop_server.schedule_math._duration import parse_go_duration
from loop_server.schedule_math._next_run import ScheduleError, next_run
from loop_server.schedule_math._rfc3339 import parse_rfc3339

__all__ = [
    "CronSchedule",
    "ScheduleError",
    "next_run",
    "parse_go_duration",
    "parse_rfc3339",
]
