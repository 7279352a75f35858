"""The scheduler on a real SQLite store, driven by a hand-moved wall clock (``tick()`` by hand)
or by Trio's MockClock (the poll loop). Nothing sleeps in real time; every wait has a deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.lowlevel
import trio.testing

from loop_server.domain import Task
from loop_server.protocols import TaskEdit
from loop_server.scheduler import SHUTDOWN_ERROR, Scheduler, TaskAlreadyRunning
from loop_server.services.errors import TaskNotFound
from loop_server.services.tasks import TaskService
from loop_server.store import Store
from tests.conftest import FixedClock
from tests.store.helpers import add_channel

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@dataclass
class Executor:
    """Answers prompts; a task whose id is in ``gates`` waits for its gate."""

    clock: FixedClock | None = None
    takes: timedelta = timedelta(0)
    gates: dict[int, trio.Event] = field(default_factory=dict)
    fail: set[int] = field(default_factory=set)
    calls: list[int] = field(default_factory=list)
    active: int = 0
    most_active: int = 0
    entered: trio.Event = field(default_factory=trio.Event)

    async def execute(self, task: Task) -> str:
        self.calls.append(task.id)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        self.entered.set()
        try:
            if task.id in self.gates:
                await self.gates[task.id].wait()
            if self.clock is not None:
                self.clock.current += self.takes
            if task.id in self.fail:
                raise RuntimeError(f"agent failed on {task.prompt}")
            return f"answer to {task.prompt}"
        finally:
            self.active -= 1


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "loop.db")
    await add_channel(opened, "c1")  # a task needs an existing channel
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def executor(clock: FixedClock) -> Executor:
    return Executor(clock=clock)


@pytest.fixture
async def scheduler(
    nursery: trio.Nursery, store: Store, executor: Executor, clock: FixedClock
) -> Scheduler:
    """A running scheduler whose loop has done its first tick and then waits (1e9 s)."""
    scheduler = Scheduler(store, executor, clock=clock, poll_interval=1e9)
    await nursery.start(scheduler.run)
    await settle(scheduler)
    return scheduler


async def settle(scheduler: Scheduler) -> None:
    with trio.fail_after(10):
        await scheduler.wait_idle()


async def add(store: Store, clock: FixedClock, kind: str, schedule: str, prompt: str = "p") -> int:
    return await TaskService(store, clock=clock).add_task("c1", schedule, kind, prompt)


async def runs_of(store: Store, task_id: int) -> list[tuple[str, str, str]]:
    runs = await store.runs.page(task_id, 0, 100)
    return [(r.status, r.response_text, r.error_text) for r in reversed(runs)]


async def test_cron_task_runs_when_due_and_reschedules_from_the_end(
    scheduler: Scheduler, store: Store, clock: FixedClock, executor: Executor
) -> None:
    task_id = await add(store, clock, "cron", "*/15 * * * *", "report")
    assert await scheduler.tick() == 0  # 10:15 is not due at 10:00
    clock.current = T0 + timedelta(minutes=15)
    executor.takes = timedelta(minutes=20)  # the run ends at 10:35
    assert await scheduler.tick() == 1
    await settle(scheduler)
    assert await runs_of(store, task_id) == [("success", "answer to report", "")]
    task = await store.tasks.get(task_id)
    assert task is not None
    assert task.next_run_at == T0 + timedelta(minutes=45)
    assert task.enabled
    [run] = await store.runs.page(task_id, 0, 10)
    assert run.started_at == T0 + timedelta(minutes=15)
    assert run.finished_at == T0 + timedelta(minutes=35)


async def test_interval_counts_from_the_end_of_the_run(
    scheduler: Scheduler, store: Store, clock: FixedClock, executor: Executor
) -> None:
    task_id = await add(store, clock, "interval", "10m")
    clock.current = T0 + timedelta(minutes=10)
    executor.takes = timedelta(minutes=3)
    await scheduler.tick()
    await settle(scheduler)
    task = await store.tasks.get(task_id)
    assert task is not None
    assert task.next_run_at == T0 + timedelta(minutes=23)


async def test_once_runs_once_then_is_disabled(
    scheduler: Scheduler, store: Store, clock: FixedClock, executor: Executor
) -> None:
    task_id = await add(store, clock, "once", "2026-03-01T10:05:00Z")
    clock.current = T0 + timedelta(minutes=5)
    assert await scheduler.tick() == 1
    await settle(scheduler)
    clock.current = T0 + timedelta(days=1)
    assert await scheduler.tick() == 0
    task = await store.tasks.get(task_id)
    assert task is not None
    assert not task.enabled
    assert executor.calls == [task_id]


async def test_failure_is_recorded_and_does_not_disable(
    scheduler: Scheduler, store: Store, clock: FixedClock, executor: Executor
) -> None:
    task_id = await add(store, clock, "interval", "1h", "deploy")
    executor.fail.add(task_id)
    clock.current = T0 + timedelta(hours=1)
    await scheduler.tick()
    await settle(scheduler)
    assert await runs_of(store, task_id) == [("failed", "", "agent failed on deploy")]
    task = await store.tasks.get(task_id)
    assert task is not None
    assert task.enabled
    assert task.next_run_at == T0 + timedelta(hours=2)


async def test_a_running_task_is_skipped_not_run_twice(
    scheduler: Scheduler, store: Store, clock: FixedClock, executor: Executor
) -> None:
    task_id = await add(store, clock, "interval", "1m")
    gate = executor.gates[task_id] = trio.Event()
    clock.current = T0 + timedelta(minutes=1)
    assert await scheduler.tick() == 1
    with trio.fail_after(10):
        await executor.entered.wait()
    # Polls during the run see the instant that started it: not an overlap, nothing recorded.
    clock.current = T0 + timedelta(minutes=3)
    assert await scheduler.tick() == 0
    assert scheduler.statistics().skipped == 0
    # An edit gives the task a new due instant, which arrives while the run still goes on:
    # skipped, and the skip recorded once, not on every poll.
    await TaskService(store, clock=clock).update_task(task_id, None, TaskEdit(schedule="1m"))
    clock.current = T0 + timedelta(minutes=5)
    assert await scheduler.tick() == 0
    assert await scheduler.tick() == 0
    with pytest.raises(TaskAlreadyRunning, match="task is already running"):
        await scheduler.run_now(task_id)
    gate.set()
    await settle(scheduler)
    assert executor.calls == [task_id]
    statuses = sorted(s for s, _, _ in await runs_of(store, task_id))
    assert statuses == ["skipped", "success"]
    assert scheduler.statistics().skipped == 1


async def test_overdue_tasks_run_once_on_start_without_backfill(
    nursery: trio.Nursery, store: Store, clock: FixedClock, executor: Executor
) -> None:
    task_id = await add(store, clock, "interval", "1h")
    clock.current = T0 + timedelta(days=3)  # the server was down for three days
    scheduler = Scheduler(store, executor, clock=clock, poll_interval=1e9)
    await nursery.start(scheduler.run)  # the first tick happens at once
    await settle(scheduler)
    assert executor.calls == [task_id]
    task = await store.tasks.get(task_id)
    assert task is not None
    assert task.next_run_at == clock.current + timedelta(hours=1)


async def test_runs_left_running_by_a_crash_are_closed(
    nursery: trio.Nursery, store: Store, clock: FixedClock, executor: Executor
) -> None:
    task_id = await add(store, clock, "interval", "1h")
    run_id = await store.runs.start(task_id, T0)
    scheduler = Scheduler(store, executor, clock=clock, poll_interval=1e9)
    await nursery.start(scheduler.run)
    run = await store.runs.get(run_id)
    assert run is not None
    assert (run.status, run.error_text, run.finished_at) == ("failed", "interrupted", T0)


async def test_shutdown_cancels_and_records_running_jobs(
    store: Store, clock: FixedClock, executor: Executor
) -> None:
    task_id = await add(store, clock, "interval", "1m")
    executor.gates[task_id] = trio.Event()  # never set: the run hangs
    clock.current = T0 + timedelta(minutes=1)
    scheduler = Scheduler(store, executor, clock=clock, poll_interval=1e9)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run)
            await executor.entered.wait()
            nursery.cancel_scope.cancel()
    assert await runs_of(store, task_id) == [("failed", "", SHUTDOWN_ERROR)]
    task = await store.tasks.get(task_id)
    assert task is not None
    assert task.next_run_at == T0 + timedelta(minutes=1)  # still due: runs once after restart


async def test_edit_toggle_and_delete_while_running(
    scheduler: Scheduler, store: Store, clock: FixedClock, executor: Executor
) -> None:
    service = TaskService(store, clock=clock)
    edited = await add(store, clock, "interval", "1m", "edited")
    toggled = await add(store, clock, "interval", "1m", "toggled")
    deleted = await add(store, clock, "interval", "1m", "deleted")
    gates = {t: trio.Event() for t in (edited, toggled, deleted)}
    executor.gates.update(gates)
    clock.current = T0 + timedelta(minutes=1)
    assert await scheduler.tick() == 3
    await service.update_task(edited, None, TaskEdit(schedule="2h"))
    await service.update_task(toggled, False, TaskEdit())
    await service.remove_task(deleted)
    for gate in gates.values():
        gate.set()
    await settle(scheduler)
    after_edit = await store.tasks.get(edited)
    after_toggle = await store.tasks.get(toggled)
    assert after_edit is not None and after_toggle is not None
    assert after_edit.next_run_at == clock.current + timedelta(hours=2)
    assert after_toggle.enabled is False
    assert await store.tasks.get(deleted) is None
    assert await runs_of(store, edited) == [("success", "answer to edited", "")]


async def test_run_now(
    scheduler: Scheduler, store: Store, clock: FixedClock, executor: Executor
) -> None:
    task_id = await add(store, clock, "cron", "0 0 1 1 *", "yearly")
    await TaskService(store, clock=clock).update_task(task_id, False, TaskEdit())
    run_id = await scheduler.run_now(task_id)  # disabled and not due: runs anyway
    await settle(scheduler)
    run = await store.runs.get(run_id)
    assert run is not None
    assert (run.status, run.response_text) == ("success", "answer to yearly")
    with pytest.raises(TaskNotFound, match="task 999 not found"):
        await scheduler.run_now(999)


async def test_concurrency_is_bounded(
    nursery: trio.Nursery, store: Store, clock: FixedClock
) -> None:
    executor = Executor()
    ids = [await add(store, clock, "interval", "1m", f"t{i}") for i in range(5)]
    gate = trio.Event()
    for task_id in ids:
        executor.gates[task_id] = gate
    clock.current = T0 + timedelta(minutes=1)
    scheduler = Scheduler(store, executor, clock=clock, poll_interval=1e9, max_concurrent=2)
    await nursery.start(scheduler.run)
    with trio.fail_after(10):
        while executor.active < 2:
            await trio.lowlevel.checkpoint()
    await trio.testing.wait_all_tasks_blocked(0.05)
    assert executor.active == 2
    assert scheduler.statistics().running == 5
    gate.set()
    await settle(scheduler)
    assert executor.most_active == 2
    assert sorted(executor.calls) == ids


class TrioWallClock:
    """A wall clock that follows Trio's (mock) clock."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._t0 = trio.current_time()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=trio.current_time() - self._t0)


async def test_poll_loop_on_mock_clock(store: Store) -> None:
    """An interval task polled every 30 s runs about every 10 minutes of (mock) time."""

    async def scenario() -> int:
        wall = TrioWallClock(T0)
        executor = Executor()
        task_id = await TaskService(store, clock=wall).add_task("c1", "10m", "interval", "p")
        scheduler = Scheduler(store, executor, clock=wall, poll_interval=30)
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run)
            # The hour in poll-sized steps: the mock clock jumps to the next deadline whenever
            # every task waits, also while a store call runs in a thread. With one long sleep
            # that next deadline was the end of the hour, which a slow store call on a loaded
            # machine let the clock jump to before the first run (seen in CI: no run at all).
            # With steps, such a jump moves time by at most one poll.
            for _ in range(120):
                await trio.sleep(30)
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        assert set(executor.calls) == {task_id}
        return len(executor.calls)

    # A separate Trio run, so the MockClock does not skip past the store's worker threads of
    # other fixtures; autojump waits for 50 ms of real idleness before jumping.
    count = await trio.to_thread.run_sync(
        partial(trio.run, scenario, clock=trio.testing.MockClock(autojump_threshold=0.05))
    )
    # Runs at 10:10, 10:20, ... 11:00. The wall clock follows the mock clock, which may also
    # jump while a store thread runs (after 50 ms of real idleness), so a run can slip a poll
    # late and push the last one out of the hour.
    assert count in (5, 6)
