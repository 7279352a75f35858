"""The poll loop and its jobs (SPEC §8.4 with A.4's run-now and no-overlap rules).

Shape (DESIGN §2): ``run()`` owns a nursery holding the poll loop and every job; a limiter
bounds how many jobs run at once. A task is never run twice at once: the scheduler keeps the set
of running task ids, and an occurrence that comes due while its task still runs is skipped
(recorded once per run, not on every poll). Times come from the injected wall ``Clock``;
waiting between polls uses Trio's clock, so tests drive both with a MockClock.

Several instances on one PostgreSQL (docs/scale-out.md): a due task is *claimed* in the store
(``runs.claim_due``), which lets exactly one instance start it; the run row carries the
instance's id. Each poll also says this instance is alive (``scheduler_instances``) and closes
the runs of instances that stopped saying so for ``LEASE_POLLS`` polls, so a run left
``running`` by a dead instance is recovered by the others. On SQLite there is one instance,
and start-up closes every run left running, as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import trio

from loop_server.clock import Clock
from loop_server.domain import Task
from loop_server.protocols import GlobalEventBroadcaster
from loop_server.scheduler._executor import TaskExecutor
from loop_server.services.errors import TaskAlreadyRunning, TaskNotFound
from loop_server.services.tasks import TaskRunLog
from loop_server.store import Store

log = logging.getLogger(__name__)

SHUTDOWN_ERROR = "cancelled: shutdown"
INTERRUPTED_ERROR = "interrupted"
SKIPPED_ERROR = "previous run still in progress"
ORPHANED_ERROR = "interrupted: its instance stopped"
#: Polls without a heartbeat after which an instance counts as gone and its runs are closed.
LEASE_POLLS = 3
#: Least time before that happens, so a short poll interval does not make a pause fatal.
MIN_LEASE_SECONDS = 2.0


def lease_seconds(poll_interval: float) -> float:
    """How long an instance may go without a heartbeat before the others count it gone."""
    return max(LEASE_POLLS * poll_interval, MIN_LEASE_SECONDS)


@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    running: int  # jobs started and not finished (including those waiting for the limiter)
    started: int  # jobs started since the scheduler began
    skipped: int  # due tasks skipped because their previous run was still going
    ticks: int


@dataclass
class _Job:
    task_id: int
    # The next_run_at that started this run. The task stays "due" at that instant until the
    # run ends and reschedules it, which is not an overlap; a different due instant (the task
    # was edited, or run now before its time) is an occurrence that falls inside the run.
    trigger: datetime | None = None
    skip_recorded: bool = False


class Scheduler:
    def __init__(
        self,
        store: Store,
        executor: TaskExecutor,
        *,
        clock: Clock,
        poll_interval: float,
        max_concurrent: int = 4,
        events: GlobalEventBroadcaster | None = None,
        instance_id: str = "",
        shared: bool | None = None,
    ) -> None:
        """``shared``: other instances poll the same store (default: when it is PostgreSQL);
        ``instance_id`` names this one to them and must be unique among them."""
        self._store = store  # read only: every write goes through ``self._runs``
        self._runs = TaskRunLog(store, events=events)  # with task.run_completed
        self._executor = executor
        self._clock = clock
        self._poll_interval = poll_interval
        self._instance_id = instance_id
        self._shared = store.db.dialect == "postgres" if shared is None else shared
        self._lease = timedelta(seconds=lease_seconds(poll_interval))
        self._limiter = trio.CapacityLimiter(max_concurrent)
        self._jobs: dict[int, _Job] = {}
        self._nursery: trio.Nursery | None = None
        self._started = 0
        self._skipped = 0
        self._ticks = 0
        self._idle = trio.Event()
        self._idle.set()

    # -- lifetime -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Close runs a crash left open, then poll until cancelled. Cancelling this cancels
        every job, and each records ``failed`` / ``cancelled: shutdown``."""
        if self._shared:
            now = self._clock.now()
            await self._runs.heartbeat(self._instance_id, now)
            closed = await self._runs.close_orphaned(
                now - self._lease, now, INTERRUPTED_ERROR, own=self._instance_id
            )
        else:
            closed = await self._runs.close_interrupted(self._clock.now(), INTERRUPTED_ERROR)
        if closed:
            log.warning("scheduler: closed %d run(s) left running by a crash", closed)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                # The first poll happens before "started": tasks overdue while the server was
                # down have started by the time the caller goes on.
                await self.tick()
                task_status.started()
                while True:
                    await trio.sleep(self._poll_interval)
                    await self.tick()
            finally:
                self._nursery = None

    async def tick(self) -> int:
        """One poll: start a job for every due task not already running. Returns how many
        started. Store errors are logged, never fatal (upstream logs them too)."""
        nursery = self._require_nursery()
        self._ticks += 1
        now = self._clock.now()
        if self._shared:
            await self._keep_lease(now)
        try:
            due = await self._store.tasks.due(now)
        except Exception:
            log.exception("scheduler: loading due tasks failed")
            return 0
        ready: list[Task] = []
        for task in due:
            job = self._jobs.get(task.id)
            if job is None:
                # Claim before the first await, so run_now cannot start it meanwhile.
                self._jobs[task.id] = _Job(task.id, trigger=task.next_run_at)
                ready.append(task)
            elif task.next_run_at != job.trigger and not job.skip_recorded:
                job.skip_recorded = True
                await self._record_skip(task, now)
        if not ready:
            return 0
        try:
            claimed = dict(
                await self._runs.claim_due([t.id for t in ready], now, self._instance_id)
            )
        except Exception:
            log.exception("scheduler: recording the start of %d run(s) failed", len(ready))
            claimed = {}
        for task in ready:
            run_id = claimed.get(task.id)
            if run_id is None:
                self._release(task.id)  # another instance runs it, or it changed meanwhile
            else:
                self._start(nursery, task, run_id)
        return len(claimed)

    async def _keep_lease(self, now: datetime) -> None:
        """Say this instance is alive and close the runs of those that are not."""
        try:
            await self._runs.heartbeat(self._instance_id, now)
            closed = await self._runs.close_orphaned(now - self._lease, now, ORPHANED_ERROR)
        except Exception:
            log.exception("scheduler: renewing the lease failed")
            return
        if closed:
            log.warning("scheduler: closed %d run(s) of instance(s) that stopped", closed)

    # -- API operations -------------------------------------------------------------------

    async def run_now(self, task_id: int) -> int:
        """Start the task now, whatever its schedule; returns the run id."""
        nursery = self._require_nursery()
        if task_id in self._jobs:
            raise TaskAlreadyRunning(task_id)
        task = await self._store.tasks.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        if task_id in self._jobs:  # started by a poll while we were reading
            raise TaskAlreadyRunning(task_id)
        self._jobs[task_id] = _Job(task_id, trigger=task.next_run_at)
        try:
            # TaskAlreadyRunning here: it runs on another instance.
            run_id = await self._runs.start(
                task_id, self._clock.now(), instance_id=self._instance_id
            )
        except BaseException:
            self._release(task_id)
            raise
        self._start(nursery, task, run_id)
        return run_id

    def is_running(self, task_id: int) -> bool:
        return task_id in self._jobs

    def statistics(self) -> SchedulerStatistics:
        return SchedulerStatistics(
            running=len(self._jobs),
            started=self._started,
            skipped=self._skipped,
            ticks=self._ticks,
        )

    async def wait_idle(self) -> None:
        """Return once no job is running (for tests and graceful shutdown)."""
        while self._jobs:
            await self._idle.wait()

    # -- jobs -----------------------------------------------------------------------------

    def _start(self, nursery: trio.Nursery, task: Task, run_id: int) -> None:
        """Start the job of a task already claimed in ``self._jobs``."""
        self._started += 1
        if self._idle.is_set():
            self._idle = trio.Event()
        nursery.start_soon(self._job, task, run_id, name=f"task-{task.id}")

    def _release(self, task_id: int) -> None:
        self._jobs.pop(task_id, None)
        if not self._jobs:
            self._idle.set()

    async def _job(self, task: Task, run_id: int) -> None:
        status, response, error = "failed", "", ""
        try:
            async with self._limiter:
                response = await self._executor.execute(task)
            status = "success"
        except trio.Cancelled:
            error = SHUTDOWN_ERROR
            raise
        except Exception as err:
            error = str(err) or type(err).__name__
            log.warning("scheduler: task %d failed: %s", task.id, error)
        finally:
            with trio.CancelScope(shield=True):
                await self._finish(task, run_id, status, response, error)
                self._release(task.id)

    async def _finish(
        self, task: Task, run_id: int, status: str, response: str, error: str
    ) -> None:
        now = self._clock.now()
        try:
            if error == SHUTDOWN_ERROR:
                # Not rescheduled: the occurrence is still due when the server is back.
                await self._runs.finish(run_id, status, response, error, now)
            else:
                await self._runs.finish_and_reschedule(
                    run_id, task.id, (status, response, error), now
                )
        except Exception:
            log.exception("scheduler: recording the end of task %d failed", task.id)
        self._runs.completed(task.id, run_id, status, task.channel_id)

    async def _record_skip(self, task: Task, now: datetime) -> None:
        self._skipped += 1
        try:
            run_id = await self._runs.start(task.id, now, status="skipped")
            await self._runs.finish(run_id, "skipped", "", SKIPPED_ERROR, now)
        except Exception:
            log.exception("scheduler: recording a skip of task %d failed", task.id)

    def _require_nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError("scheduler is not running")
        return self._nursery
