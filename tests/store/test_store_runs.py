"""TaskRunRepository: start/finish, newest-first paging, closing interrupted runs."""

from __future__ import annotations

import pytest

from loop_server.domain import NewTask, TaskRun
from loop_server.store import ConstraintViolation, Store

from .helpers import T0, at, by_engine, check_failed


async def _task(store: Store, channel_id: str = "c1") -> int:
    return await store.tasks.create(
        NewTask(
            channel_id=channel_id,
            schedule="1m",
            type="interval",
            prompt="p",
            next_run_at=at(60),
            created_at=T0,
        )
    )


async def test_start_and_finish(store: Store) -> None:
    task_id = await _task(store)
    run_id = await store.runs.start(task_id, at(1))
    assert await store.runs.get(run_id) == TaskRun(
        id=run_id,
        task_id=task_id,
        status="running",
        response_text="",
        error_text="",
        started_at=at(1),
        finished_at=None,
    )
    assert await store.runs.finish(run_id, "success", "all good", "", at(9)) is True
    assert await store.runs.get(run_id) == TaskRun(
        id=run_id,
        task_id=task_id,
        status="success",
        response_text="all good",
        error_text="",
        started_at=at(1),
        finished_at=at(9),
    )
    assert await store.runs.finish(404, "failed", "", "x", at(9)) is False
    assert await store.runs.get(404) is None


async def test_start_for_unknown_task_or_bad_status_is_refused(store: Store) -> None:
    foreign_key = by_engine(store, sqlite="FOREIGN KEY", postgres="violates foreign key")
    with pytest.raises(ConstraintViolation, match=foreign_key):
        await store.runs.start(404, at(1))
    task_id = await _task(store)
    with pytest.raises(ConstraintViolation, match=check_failed(store)):
        await store.runs.start(task_id, at(1), status="exploded")
    skipped = await store.runs.start(task_id, at(2), status="skipped")
    assert [(r.id, r.status) for r in await store.runs.page(task_id, 0, 10)] == [
        (skipped, "skipped")
    ]


async def test_page_newest_first_with_cursor(store: Store) -> None:
    task_id = await _task(store)
    other = await _task(store, "c2")
    ids = []
    for n in range(7):
        ids.append(await store.runs.start(task_id, at(n), status="skipped"))
        await store.runs.start(other, at(n), status="skipped")
    first = await store.runs.page(task_id, 0, 3)
    assert [r.id for r in first] == ids[::-1][:3]
    second = await store.runs.page(task_id, first[-1].id, 3)
    assert [r.id for r in second] == ids[::-1][3:6]
    third = await store.runs.page(task_id, second[-1].id, 3)
    assert [r.id for r in third] == [ids[0]]
    assert [r.started_at for r in third] == [at(0)]
    with pytest.raises(ValueError, match="limit must be >= 1, got 0"):
        await store.runs.page(task_id, 0, 0)


async def test_close_interrupted_fails_only_running_rows(store: Store) -> None:
    task_id = await _task(store)
    done = await store.runs.start(task_id, at(1))
    await store.runs.finish(done, "success", "ok", "", at(2))
    open_a = await store.runs.start(task_id, at(3))
    open_b = await store.runs.start(await _task(store, "c2"), at(4))
    assert await store.runs.close_interrupted(at(100), "cancelled: shutdown") == 2
    runs = {r.id: r for r in [await store.runs.get(i) for i in (done, open_a, open_b)] if r}
    assert [
        (runs[i].status, runs[i].error_text, runs[i].finished_at) for i in (open_a, open_b)
    ] == [
        ("failed", "cancelled: shutdown", at(100)),
        ("failed", "cancelled: shutdown", at(100)),
    ]
    assert (runs[done].status, runs[done].error_text, runs[done].finished_at) == (
        "success",
        "",
        at(2),
    )
    assert await store.runs.close_interrupted(at(200), "again") == 0


async def test_a_task_has_at_most_one_running_run(store: Store) -> None:
    # The unique index is what makes a scheduler claim exclusive across instances.
    task_id = await _task(store)
    first = await store.runs.start(task_id, at(1))
    with pytest.raises(ConstraintViolation):
        await store.runs.start(task_id, at(2))
    await store.runs.start(task_id, at(2), status="skipped")  # other statuses are not limited
    await store.runs.finish(first, "success", "", "", at(3))
    assert await store.runs.start(task_id, at(4)) > first
