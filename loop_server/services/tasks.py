"""Task operations behind the API and the slash commands: validation and next-run computation.

Nonsense is refused before anything is stored, with a text that says what is wrong (upstream
stores such tasks and then fails every run): an unknown channel, an empty prompt, a negative
``auto_delete_sec``, a schedule that cannot be computed, a ``once`` time already past.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from loop_server.clock import Clock
from loop_server.domain import NewTask, Task, TaskRun
from loop_server.events import TASK_CREATED, TASK_DELETED, TASK_UPDATED
from loop_server.protocols import GlobalEventBroadcaster, TaskEdit
from loop_server.schedule_math import ScheduleError, next_run
from loop_server.services.errors import (
    Invalid,
    NotFound,
    ServiceError,
    TaskAlreadyRunning,
    TaskNotFound,
)
from loop_server.store import ConstraintViolation, Store

CHANNEL_NOT_FOUND = "channel not found"


def check_prompt(prompt: str) -> None:
    if not prompt.strip():
        raise Invalid("prompt is required")


def check_auto_delete(seconds: int) -> None:
    if seconds < 0:
        raise Invalid("auto_delete_sec must not be negative")


def first_run(task_type: str, schedule: str, now: datetime) -> datetime:
    """``next_run`` for a schedule a client just gave: a ``once`` time already past is refused
    (upstream runs it on the next poll, which is never what the client meant)."""
    when = next_run(task_type, schedule, now)
    if task_type == "once" and when < now:
        raise ScheduleError(f"calculating next run: once time {schedule} is in the past")
    return when


log = logging.getLogger("loop_server.scheduler")


class TaskRunner(Protocol):
    """Starts a task now, whatever its schedule (the running ``scheduler.Scheduler``)."""

    async def run_now(self, task_id: int) -> int: ...


class TaskService:
    """Satisfies ``TaskScheduler``. Running a task now is the ``runner``'s job (the scheduler,
    built before this service); without one, ``run_now`` says the scheduler is not running."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        events: GlobalEventBroadcaster | None = None,
        runner: TaskRunner | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._runner = runner

    async def add_task(
        self,
        channel_id: str,
        schedule: str,
        task_type: str,
        prompt: str,
        *,
        auto_delete_sec: int = 0,
        template_name: str = "",
    ) -> int:
        if not channel_id:
            raise Invalid("channel_id is required")
        check_prompt(prompt)
        check_auto_delete(auto_delete_sec)
        now = self._clock.now()
        when = first_run(task_type, schedule, now)  # raises ScheduleError: nothing stored
        if await self._store.channels.get(channel_id) is None:
            raise NotFound(CHANNEL_NOT_FOUND)
        task_id = await self._store.tasks.create(
            NewTask(
                channel_id=channel_id,
                schedule=schedule,
                type=task_type,
                prompt=prompt,
                next_run_at=when,
                created_at=now,
                enabled=True,
                template_name=template_name,
                auto_delete_sec=auto_delete_sec,
            )
        )
        self._publish(TASK_CREATED, task_id, channel_id)
        return task_id

    async def list_tasks(self, channel_id: str) -> list[Task]:
        return await self._store.tasks.list_by_channel(channel_id, self._clock.now())

    async def get_task(self, task_id: int) -> Task | None:
        return await self._store.tasks.get(task_id)

    async def remove_task(self, task_id: int) -> None:
        """Delete a task and its run log; ``TaskNotFound`` when there is none (a second delete
        is a 404, as a ``GET`` of it is)."""
        task = await self._store.tasks.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        if await self._store.tasks.delete(task_id):
            self._publish(TASK_DELETED, task_id, task.channel_id)

    async def update_task(self, task_id: int, enabled: bool | None, edit: TaskEdit) -> None:
        now = self._clock.now()
        if edit.prompt is not None:
            check_prompt(edit.prompt)
        if edit.auto_delete_sec is not None:
            check_auto_delete(edit.auto_delete_sec)
        task = await self._store.tasks.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        if edit.is_empty():
            if enabled is not None:
                await self._store.tasks.set_enabled(task_id, enabled, now)
                self._publish(TASK_UPDATED, task_id, task.channel_id)
            return
        schedule = task.schedule if edit.schedule is None else edit.schedule
        task_type = task.type if edit.type is None else edit.type
        next_run_at = None
        if edit.schedule is not None or edit.type is not None:
            next_run_at = first_run(task_type, schedule, now)  # validated before any write
        await self._store.tasks.update(
            task_id,
            schedule=edit.schedule,
            type=edit.type,
            prompt=edit.prompt,
            auto_delete_sec=edit.auto_delete_sec,
            next_run_at=next_run_at,
            enabled=enabled,
            now=now,
        )
        self._publish(TASK_UPDATED, task_id, task.channel_id)

    def _publish(self, event_type: str, task_id: int, channel_id: str) -> None:
        if self._events is not None:
            self._events.broadcast_task_event(event_type, task_id, channel_id)

    async def list_runs(self, task_id: int, cursor: int, limit: int) -> list[TaskRun]:
        if await self._store.tasks.get(task_id) is None:
            raise TaskNotFound(task_id)
        return await self._store.runs.page(task_id, cursor, limit)

    async def run_now(self, task_id: int) -> int:
        if self._runner is None:
            raise ServiceError("scheduler is not running")
        return await self._runner.run_now(task_id)


class TaskRunLog:
    """The scheduler's writes: its run log, the rescheduling after a run, and the
    ``task.run_completed`` event. The scheduler reads the store; it writes only through this."""

    def __init__(self, store: Store, *, events: GlobalEventBroadcaster | None = None) -> None:
        self._store = store
        self._events = events

    async def close_interrupted(self, now: datetime, error_text: str) -> int:
        return await self._store.runs.close_interrupted(now, error_text)

    async def close_orphaned(
        self, stale_before: datetime, now: datetime, error_text: str, *, own: str | None = None
    ) -> int:
        return await self._store.runs.close_orphaned(stale_before, now, error_text, own=own)

    async def close_own(self, instance_id: str, now: datetime, error_text: str) -> int:
        return await self._store.runs.close_own(instance_id, now, error_text)

    async def heartbeat(self, instance_id: str, now: datetime) -> None:
        await self._store.runs.heartbeat(instance_id, now)

    async def start(
        self, task_id: int, now: datetime, status: str = "running", instance_id: str = ""
    ) -> int:
        """``TaskAlreadyRunning`` when a running run is asked for and the task has one, on
        this instance or another (the store's unique index says so)."""
        try:
            return await self._store.runs.start(
                task_id, now, status=status, instance_id=instance_id
            )
        except ConstraintViolation as err:
            if status == "running" and await self._store.tasks.get(task_id) is not None:
                raise TaskAlreadyRunning(task_id) from err
            raise

    async def claim_due(
        self, task_ids: Sequence[int], now: datetime, instance_id: str
    ) -> list[tuple[int, int]]:
        return await self._store.runs.claim_due(task_ids, now, instance_id)

    async def finish(
        self, run_id: int, status: str, response: str, error: str, now: datetime
    ) -> None:
        await self._store.runs.finish(run_id, status, response, error, now)

    async def finish_and_reschedule(
        self, run_id: int, task_id: int, outcome: tuple[str, str, str], now: datetime
    ) -> None:
        """End the run and move its task to its next occurrence (a once-task is disabled)."""
        await self._store.runs.finish_and_reschedule(run_id, task_id, outcome, now, _following(now))

    def completed(self, task_id: int, run_id: int, status: str, channel_id: str) -> None:
        if self._events is not None:
            self._events.broadcast_task_run_completed(task_id, run_id, status, channel_id)


def _following(now: datetime) -> Callable[[Task], tuple[datetime, bool] | None]:
    """What a run that ended at ``now`` does to its task, read again as it is then (it may have
    been edited, toggled or deleted while it ran): a once-task is disabled, others move on."""

    def decide(task: Task) -> tuple[datetime, bool] | None:
        if task.type == "once":
            return task.next_run_at, False
        try:
            return next_run(task.type, task.schedule, now), task.enabled
        except ScheduleError as err:
            log.error("scheduler: task %d keeps its next run: %s", task.id, err)
            return None

    return decide
