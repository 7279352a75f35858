"""The scheduler loop: runs scheduled tasks on time (SPEC §8, A.4), a poll loop and one job
per due task. (When a task runs next, the pure maths, is ``loop_server.schedule_math``.)"""

from loop_server.scheduler._executor import TaskExecutor
from loop_server.scheduler._scheduler import (
    SHUTDOWN_ERROR,
    Scheduler,
    SchedulerStatistics,
    lease_seconds,
)
from loop_server.services.errors import TaskAlreadyRunning

__all__ = [
    "SHUTDOWN_ERROR",
    "Scheduler",
    "SchedulerStatistics",
    "TaskAlreadyRunning",
    "TaskExecutor",
    "lease_seconds",
]
