"""TaskRepository: create/get, listing without past once-tasks, updates, deletes, due tasks."""

from __future__ import annotations

import pytest

from loop_server.domain import NewTask, Task
from loop_server.store import ConstraintViolation, Store

from .helpers import T0, at, check_failed


def new_task(
    channel_id: str = "c1",
    *,
    type: str = "interval",
    next_run: float = 60,
    enabled: bool = True,
    prompt: str = "check",
) -> NewTask:
    schedule = {"cron": "*/5 * * * *", "interval": "1m", "once": "2026-03-01T10:01:00Z"}
    return NewTask(
        channel_id=channel_id,
        schedule=schedule.get(type, "?"),
        type=type,
        prompt=prompt,
        next_run_at=at(next_run),
        created_at=T0,
        enabled=enabled,
    )


async def test_create_and_get(store: Store) -> None:
    task_id = await store.tasks.create(
        NewTask(
            channel_id="c1",
            schedule="0 9 * * 1",
            type="cron",
            prompt="weekly report",
            next_run_at=at(3600),
            created_at=T0,
            guild_id="g1",
            template_name="weekly",
            auto_delete_sec=300,
        )
    )
    assert task_id == 1
    assert await store.tasks.get(task_id) == Task(
        id=1,
        channel_id="c1",
        guild_id="g1",
        schedule="0 9 * * 1",
        type="cron",
        prompt="weekly report",
        enabled=True,
        next_run_at=at(3600),
        created_at=T0,
        updated_at=T0,
        template_name="weekly",
        auto_delete_sec=300,
    )
    assert await store.tasks.get(2) is None


async def test_unknown_type_is_refused_by_the_schema(store: Store) -> None:
    with pytest.raises(ConstraintViolation, match=check_failed(store)):
        await store.tasks.create(new_task(type="hourly"))
    assert await store.tasks.list_by_channel("c1", T0) == []


async def test_list_by_channel_hides_past_once_tasks_and_orders_by_next_run(store: Store) -> None:
    past_once = await store.tasks.create(new_task(type="once", next_run=-10))
    future_once = await store.tasks.create(new_task(type="once", next_run=500))
    late = await store.tasks.create(new_task(type="cron", next_run=300))
    early = await store.tasks.create(new_task(type="interval", next_run=-60))  # overdue: shown
    same_time = await store.tasks.create(new_task(type="interval", next_run=300))
    await store.tasks.create(new_task("other", next_run=1))
    listed = await store.tasks.list_by_channel("c1", T0)
    assert [t.id for t in listed] == [early, late, same_time, future_once]
    assert past_once not in [t.id for t in listed]
    # A once-task due exactly now is not in the past yet.
    assert [t.id for t in await store.tasks.list_by_channel("c1", at(500))][-1] == future_once
    assert await store.tasks.list_by_channel("nobody", T0) == []


@pytest.mark.parametrize("beyond_bound", [-170, 0, 1])
async def test_list_by_channel_is_the_same_either_side_of_the_keyed_bound(
    store: Store, beyond_bound: int
) -> None:
    """Up to KEYED_ROWS tasks are read on the loop's thread, more in a worker thread: the list
    (order, hidden past once-tasks) must not tell the two apart."""
    from loop_server.store._sql import KEYED_ROWS

    ids: dict[int, tuple[str, float]] = {}
    for n in range(KEYED_ROWS + beyond_bound):
        kind = ("once", "interval", "cron")[n % 3]
        when = (n * 37) % 400 - 200  # past and future, with ties
        ids[await store.tasks.create(new_task(type=kind, next_run=when))] = (kind, when)
    await store.tasks.create(new_task("other", next_run=1))
    before = store.db.statistics()
    listed = await store.tasks.list_by_channel("c1", T0)
    expected = sorted(
        (when, task_id)
        for task_id, (kind, when) in ids.items()
        if not (kind == "once" and when < 0)
    )
    assert [t.id for t in listed] == [task_id for _, task_id in expected]
    assert all(t.channel_id == "c1" for t in listed)
    if store.db.dialect == "sqlite":
        keyed = store.db.statistics().keyed_reads - before.keyed_reads
        assert keyed == 1  # the bounded read always runs first; a larger channel then hops


async def test_update_sets_only_given_fields(store: Store) -> None:
    task_id = await store.tasks.create(new_task(prompt="old"))
    assert await store.tasks.update(task_id, prompt="new", auto_delete_sec=30, now=at(10))
    task = await store.tasks.get(task_id)
    assert task is not None
    assert (task.prompt, task.auto_delete_sec, task.schedule, task.type) == (
        "new",
        30,
        "1m",
        "interval",
    )
    assert (task.next_run_at, task.enabled, task.updated_at, task.created_at) == (
        at(60),
        True,
        at(10),
        T0,
    )

    assert await store.tasks.update(
        task_id, schedule="0 * * * *", type="cron", next_run_at=at(3600), enabled=False, now=at(20)
    )
    task = await store.tasks.get(task_id)
    assert task is not None
    assert (task.schedule, task.type, task.next_run_at, task.enabled, task.prompt) == (
        "0 * * * *",
        "cron",
        at(3600),
        False,
        "new",
    )
    assert await store.tasks.update(999, prompt="x", now=at(30)) is False


async def test_update_needs_a_field_and_a_valid_type(store: Store) -> None:
    task_id = await store.tasks.create(new_task())
    with pytest.raises(ValueError, match="at least one field"):
        await store.tasks.update(task_id, now=at(1))
    with pytest.raises(ConstraintViolation, match=check_failed(store)):
        await store.tasks.update(task_id, type="weekly", prompt="changed", now=at(1))
    task = await store.tasks.get(task_id)
    assert task is not None
    assert (task.type, task.prompt, task.updated_at) == ("interval", "check", T0)


async def test_set_enabled_and_set_next_run(store: Store) -> None:
    task_id = await store.tasks.create(new_task())
    assert await store.tasks.set_enabled(task_id, False, at(1)) is True
    assert await store.tasks.set_enabled(404, True, at(1)) is False  # silent no-op for the API
    task = await store.tasks.get(task_id)
    assert task is not None
    assert (task.enabled, task.updated_at) == (False, at(1))

    assert await store.tasks.set_next_run(task_id, at(120), True, at(2)) is True
    task = await store.tasks.get(task_id)
    assert task is not None
    assert (task.enabled, task.next_run_at, task.updated_at) == (True, at(120), at(2))


async def test_delete_removes_run_logs_first(store: Store) -> None:
    task_id = await store.tasks.create(new_task())
    keep_id = await store.tasks.create(new_task())
    await store.runs.start(task_id, at(1))
    await store.runs.start(task_id, at(2), status="skipped")
    kept_run = await store.runs.start(keep_id, at(3))
    assert await store.tasks.delete(task_id) is True
    assert await store.tasks.get(task_id) is None
    assert await store.runs.page(task_id, 0, 10) == []
    assert [r.id for r in await store.runs.page(keep_id, 0, 10)] == [kept_run]
    assert await store.tasks.delete(task_id) is False


async def test_due_returns_enabled_tasks_up_to_now_in_order(store: Store) -> None:
    later = await store.tasks.create(new_task(next_run=-10))
    earliest = await store.tasks.create(new_task("c2", next_run=-100, type="once"))
    exactly_now = await store.tasks.create(new_task(next_run=0))
    await store.tasks.create(new_task(next_run=-50, enabled=False))
    await store.tasks.create(new_task(next_run=1))
    assert [t.id for t in await store.tasks.due(T0)] == [earliest, later, exactly_now]
    assert [t.id for t in await store.tasks.due(T0, limit=2)] == [earliest, later]
    assert await store.tasks.due(at(-1000)) == []
    with pytest.raises(ValueError, match="limit must be >= 1, got 0"):
        await store.tasks.due(T0, limit=0)


@pytest.mark.sqlite_only("asserts SQLite's EXPLAIN QUERY PLAN text")
async def test_due_uses_the_index_without_sorting(store: Store) -> None:
    plan = await store.db.read(
        lambda c: [
            r[3]
            for r in c.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM scheduled_tasks"
                " WHERE enabled = 1 AND next_run_at <= ? ORDER BY next_run_at, id LIMIT ?",
                ("x", -1),
            )
        ]
    )
    assert plan == [
        "SEARCH scheduled_tasks USING INDEX scheduled_tasks_due (enabled=? AND next_run_at<?)"
    ]
