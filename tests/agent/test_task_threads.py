"""A scheduled run's thread (🧵) and its expiry (💨, deleted ``auto_delete_sec`` after the run)
on Trio's mock clock, with the real store and thread service (no Docker needed)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
import trio.testing

from loop_server.agent._task_threads import (
    EPHEMERAL_TAG,
    TaskThreads,
    ephemeral_name,
    strip_ephemeral,
    thread_name,
)
from loop_server.domain import Task
from loop_server.events import EventsHub
from loop_server.services.tasks import TaskService
from loop_server.services.threads import ThreadService
from loop_server.store import Store
from tests.conftest import FixedClock
from tests.store.helpers import add_channel

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock()  # rate 0: time moves only when the test jumps


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "loop.db")
    await add_channel(opened, "c1", platform="local")
    yield opened
    await opened.close()


async def _task(store: Store, prompt: str = "check the queue", auto_delete: int = 60) -> Task:
    tasks = TaskService(store, clock=FixedClock(NOW))
    task_id = await tasks.add_task("c1", "1h", "interval", prompt, auto_delete_sec=auto_delete)
    task = await tasks.get_task(task_id)
    assert task is not None
    return task


def test_names_and_the_tag() -> None:
    task = Task(
        id=7,
        channel_id="c1",
        guild_id="",
        schedule="0 9 * * *",
        type="cron",
        prompt="summarise\nopen PRs",
        enabled=True,
        next_run_at=NOW,
        created_at=NOW,
        updated_at=NOW,
        template_name="",
        auto_delete_sec=60,
    )
    assert thread_name(task) == "🧵 task #7 (`0 9 * * *`) summarise open PRs"
    assert ephemeral_name(thread_name(task)) == "💨 task #7 (`0 9 * * *`) summarise open PRs"
    long = thread_name(dataclasses.replace(task, prompt="x" * 200))
    assert len(long) == 103 and long.endswith("x...")
    assert strip_ephemeral(f"{EPHEMERAL_TAG} Nothing new.") == ("Nothing new.", True)
    assert strip_ephemeral(f"Nothing new. {EPHEMERAL_TAG}") == ("Nothing new.", True)
    assert strip_ephemeral("Two PRs wait for review.") == ("Two PRs wait for review.", False)


async def test_an_ephemeral_thread_is_renamed_then_deleted_after_auto_delete_sec(
    store: Store, mock_clock: trio.testing.MockClock
) -> None:
    hub = EventsHub()
    threads = ThreadService(store, None, clock=FixedClock(NOW), events=hub)
    task_threads = TaskThreads(threads)
    task = await _task(store)
    async with trio.open_nursery() as nursery:
        await nursery.start(task_threads.run)
        thread_id = await task_threads.open(task)
        made = await store.channels.get(thread_id)
        assert made is not None
        assert (made.parent_id, made.name) == ("c1", "🧵 task #1 (`1h`) check the queue")
        watcher = hub.register()

        await task_threads.expire(thread_id, task)
        renamed = await store.channels.get(thread_id)
        assert renamed is not None and renamed.name == "💨 task #1 (`1h`) check the queue"

        # The deletion's timer starts when its task first runs: let it, before time moves.
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(59.9)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.WouldBlock):
            watcher.receive_batch_nowait()  # not yet
        assert await store.channels.get(thread_id) is not None

        mock_clock.jump(0.2)
        [deleted] = await watcher.receive_batch()
        assert (deleted.type, deleted.channel_id) == ("channel.deleted", thread_id)
        assert await store.channels.get(thread_id) is None
        nursery.cancel_scope.cancel()


async def test_a_thread_deleted_meanwhile_is_not_an_error(
    store: Store, mock_clock: trio.testing.MockClock
) -> None:
    threads = ThreadService(store, None, clock=FixedClock(NOW))
    task_threads = TaskThreads(threads)
    task = await _task(store, auto_delete=5)
    async with trio.open_nursery() as nursery:
        await nursery.start(task_threads.run)
        thread_id = await task_threads.open(task)
        await task_threads.expire(thread_id, task)
        await threads.delete_thread(thread_id)  # someone was quicker
        await trio.testing.wait_all_tasks_blocked()  # the deletion's timer is running
        mock_clock.jump(6)
        await trio.testing.wait_all_tasks_blocked()
        assert await store.channels.get(thread_id) is None
        nursery.cancel_scope.cancel()


async def test_no_thread_when_the_channel_is_gone(store: Store) -> None:
    task = await _task(store)
    await store.channels.delete("c1")
    assert await TaskThreads(ThreadService(store, None, clock=FixedClock(NOW))).open(task) == ""
