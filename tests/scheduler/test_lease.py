"""Scheduler leases: several schedulers (instances) on one store, each due task run once.

The schedulers share one store, on SQLite (``shared=True``) and on a real PostgreSQL: the code
the instances of a deployment run (claim, heartbeat, orphan recovery). Three real processes:
tests/scaleout/test_three_instances.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from loop_server.domain import NewTask
from loop_server.scheduler import Scheduler, TaskAlreadyRunning
from loop_server.scheduler._scheduler import INTERRUPTED_ERROR, ORPHANED_ERROR
from loop_server.store import Store, open_store
from tests.conftest import FixedClock
from tests.scheduler.test_scheduler import Executor, runs_of, settle
from tests.store.helpers import add_channel

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
POLL = 10.0  # seconds: the lease is LEASE_POLLS polls, 30 s


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The same store on each engine: SQLite, and a real PostgreSQL (where the claim takes a
    row lock and several connections really run at once)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    opened = await open_store(database_url=url, path=tmp_path / "loop.db")
    await add_channel(opened, "c1")
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


async def once_task(store: Store, at: datetime) -> int:
    new = NewTask(
        channel_id="c1",
        schedule=at.isoformat(),
        type="once",
        prompt="p",
        next_run_at=at,
        created_at=T0 - timedelta(hours=1),
    )
    return await store.tasks.create(new)


async def start_instance(
    nursery: trio.Nursery, store: Store, executor: Executor, clock: FixedClock, name: str
) -> Scheduler:
    scheduler = Scheduler(
        store, executor, clock=clock, poll_interval=POLL, instance_id=name, shared=True
    )
    # The loop's own sleeps are never reached in these tests: each waits 10 s of real time at
    # most, and the ticks are driven by hand.
    await nursery.start(scheduler.run)
    await settle(scheduler)
    return scheduler


async def instance_of(store: Store, run_id: int) -> str:
    rows = await store.db.read(
        lambda c: c.execute(
            "SELECT instance_id FROM task_run_logs WHERE id = ?", (run_id,)
        ).fetchall()
    )
    return str(rows[0][0])


async def test_a_due_task_is_claimed_by_one_instance_and_run_now_conflicts_on_the_other(
    nursery: trio.Nursery, store: Store, clock: FixedClock
) -> None:
    task_id = await once_task(store, T0 + timedelta(minutes=1))
    gate = trio.Event()
    executor = Executor(gates={task_id: gate})
    a = await start_instance(nursery, store, executor, clock, "a")
    b = await start_instance(nursery, store, executor, clock, "b")
    clock.current = T0 + timedelta(minutes=1)
    assert await a.tick() == 1
    assert await b.tick() == 0  # due, but running on a
    with pytest.raises(TaskAlreadyRunning):
        await b.run_now(task_id)
    assert not b.is_running(task_id)
    gate.set()
    await settle(a)
    assert await b.tick() == 0  # a's run ended and disabled the once-task in one transaction
    [run] = await store.runs.page(task_id, 0, 10)
    assert (run.status, await instance_of(store, run.id)) == ("success", "a")
    task = await store.tasks.get(task_id)
    assert task is not None and not task.enabled
    assert executor.calls == [task_id]


async def test_many_tasks_due_at_once_each_run_once_across_instances(
    nursery: trio.Nursery, store: Store, clock: FixedClock
) -> None:
    ids = [await once_task(store, T0 + timedelta(minutes=1)) for _ in range(300)]
    executor = Executor()
    instances = [await start_instance(nursery, store, executor, clock, n) for n in "abc"]
    clock.current = T0 + timedelta(minutes=1)
    started: list[int] = []

    async def poll(scheduler: Scheduler) -> None:
        started.append(await scheduler.tick())

    async with trio.open_nursery() as polls:
        for scheduler in instances:
            polls.start_soon(poll, scheduler)
    for scheduler in instances:
        await settle(scheduler)
    for scheduler in instances:
        assert await scheduler.tick() == 0
    assert sum(started) == len(ids)
    assert sorted(executor.calls) == ids  # each exactly once


async def test_runs_of_an_instance_that_stopped_are_closed_and_the_task_runs_again(
    nursery: trio.Nursery, store: Store, clock: FixedClock
) -> None:
    task_id = await once_task(store, T0)
    # An instance that claimed the task, then went silent (SIGKILL: nothing recorded its end).
    await store.runs.heartbeat("dead", T0)
    orphan = await store.runs.start(task_id, T0, instance_id="dead")
    executor = Executor()
    b = await start_instance(nursery, store, executor, clock, "b")
    assert executor.calls == []  # the lease of "dead" has not expired yet
    clock.current = T0 + timedelta(seconds=3 * POLL - 1)
    assert await b.tick() == 0
    clock.current = T0 + timedelta(seconds=3 * POLL + 1)
    assert await b.tick() == 1
    await settle(b)
    assert await runs_of(store, task_id) == [
        ("failed", "", ORPHANED_ERROR),
        ("success", "answer to p", ""),
    ]
    closed = await store.runs.get(orphan)
    assert closed is not None and closed.finished_at == T0 + timedelta(seconds=3 * POLL + 1)


async def test_a_live_instance_keeps_its_runs(
    nursery: trio.Nursery, store: Store, clock: FixedClock
) -> None:
    task_id = await once_task(store, T0)
    await store.runs.heartbeat("alive", T0)
    running = await store.runs.start(task_id, T0, instance_id="alive")
    executor = Executor()
    b = await start_instance(nursery, store, executor, clock, "b")
    for step in range(1, 6):
        clock.current = T0 + timedelta(seconds=step * POLL)
        await store.runs.heartbeat("alive", clock.current)
        assert await b.tick() == 0
    run = await store.runs.get(running)
    assert run is not None and run.status == "running"
    assert executor.calls == []


async def test_start_up_closes_this_instances_runs_from_its_earlier_life(
    nursery: trio.Nursery, store: Store, clock: FixedClock
) -> None:
    task_id = await once_task(store, T0 + timedelta(hours=1))
    await store.runs.heartbeat("b", T0)  # fresh: it only just died and came back
    earlier = await store.runs.start(task_id, T0 - timedelta(seconds=5), instance_id="b")
    await start_instance(nursery, store, Executor(), clock, "b")
    run = await store.runs.get(earlier)
    assert run is not None
    assert (run.status, run.error_text) == ("failed", INTERRUPTED_ERROR)
