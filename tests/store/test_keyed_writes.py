"""Keyed writes (``Database.write(fn, keyed=True)``): a batch of only such writes runs its SQL on
the event loop's thread and its COMMIT in a worker thread; a lock held by another process
sends the batch to a worker thread that waits for it, without stalling the loop."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from loop_server.store import ConstraintViolation, Database

from .helpers import channel_ids, insert_channel

WAIT = 10.0


async def _all(
    db: Database, writes: list[tuple[Callable[[sqlite3.Connection], Any], bool]]
) -> list[tuple[str, Any]]:
    """Submit ``writes`` (fn, keyed) at once; each one's ("ok", result) or ("error", exc)."""
    outcomes: list[tuple[str, Any]] = [("unset", None)] * len(writes)

    async def one(i: int, fn: Callable[[sqlite3.Connection], Any], keyed: bool) -> None:
        try:
            outcomes[i] = ("ok", await db.write(fn, keyed=keyed))
        except Exception as exc:
            outcomes[i] = ("error", exc)

    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            for i, (fn, keyed) in enumerate(writes):
                nursery.start_soon(one, i, fn, keyed)
    return outcomes


async def test_keyed_writes_run_their_sql_on_the_loop_and_share_a_commit(tmp_path: Path) -> None:
    seen: list[int] = []
    async with await Database.open(tmp_path / "loop.db") as db:
        outcomes = await _all(db, [(insert_channel(f"c{i}", seen), True) for i in range(6)])
        assert outcomes == [("ok", f"c{i}") for i in range(6)]
        assert sorted(await db.read(channel_ids)) == [f"c{i}" for i in range(6)]
        stats = db.statistics()
    assert set(seen) == {threading.get_ident()}
    assert stats.writes_committed == 6
    assert stats.inline_write_batches == stats.commits >= 1


async def test_a_batch_with_one_unkeyed_write_runs_in_a_worker_thread(tmp_path: Path) -> None:
    """Three writes queued behind a parked one share the next batch; one of them is not
    keyed, so the whole batch runs in a worker thread."""
    seen: list[int] = []
    parked = trio.Event()
    release = threading.Event()

    def parked_write(conn: sqlite3.Connection) -> None:
        trio.from_thread.run_sync(parked.set)
        if not release.wait(WAIT):
            raise TimeoutError("the test never released the write")

    async with await Database.open(tmp_path / "loop.db") as db:
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(db.write, parked_write)
                await parked.wait()
                for channel_id, keyed in (("k1", True), ("u", False), ("k2", True)):
                    nursery.start_soon(
                        partial(db.write, insert_channel(channel_id, seen), keyed=keyed)
                    )
                await trio.testing.wait_all_tasks_blocked()
                assert db.statistics().writes_waiting == 3
                release.set()
        assert sorted(await db.read(channel_ids)) == ["k1", "k2", "u"]
        stats = db.statistics()
    assert len(seen) == 3 and threading.get_ident() not in seen
    assert (stats.commits, stats.inline_write_batches) == (2, 0)


async def test_a_failing_keyed_write_is_undone_alone(tmp_path: Path) -> None:
    def fails(conn: sqlite3.Connection) -> None:
        insert_channel("half")(conn)
        raise RuntimeError("changed my mind")

    async with await Database.open(tmp_path / "loop.db") as db:
        await db.write(insert_channel("dup"), keyed=True)
        outcomes = await _all(
            db,
            [
                (insert_channel("a"), True),
                (fails, True),
                (insert_channel("dup"), True),
                (insert_channel("b"), True),
            ],
        )
        assert outcomes[0] == ("ok", "a") and outcomes[3] == ("ok", "b")
        assert outcomes[1][0] == "error" and isinstance(outcomes[1][1], RuntimeError)
        assert outcomes[2][0] == "error" and isinstance(outcomes[2][1], ConstraintViolation)
        assert sorted(await db.read(channel_ids)) == ["a", "b", "dup"]


async def test_a_keyed_write_waits_for_another_process_s_lock_off_the_loop(
    tmp_path: Path,
) -> None:
    """Another connection (as another process would) holds the write lock: the keyed write
    does not block the event loop while it waits, and commits once the lock is released."""
    path = tmp_path / "loop.db"
    seen: list[int] = []
    async with await Database.open(path) as db:
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        ticks = 0
        done = trio.Event()

        async def tick() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await trio.sleep(0.01)

        async def release_later() -> None:
            await trio.sleep(0.3)
            holder.execute("ROLLBACK")

        try:
            with trio.fail_after(WAIT):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(tick)
                    nursery.start_soon(release_later)
                    assert await db.write(insert_channel("late", seen), keyed=True) == "late"
                    done.set()
        finally:
            holder.close()
        assert await db.read(channel_ids) == ["late"]
        stats = db.statistics()
    assert ticks >= 10  # the loop kept running for the 0.3 s the lock was held
    assert seen and threading.get_ident() not in seen  # the write ran in a worker thread
    assert stats.inline_write_batches == 0


async def test_a_keyed_write_after_close_is_refused(tmp_path: Path) -> None:
    from loop_server.store import StoreError

    db = await Database.open(tmp_path / "loop.db")
    await db.close()
    with pytest.raises(StoreError, match="closed"):
        await db.write(insert_channel("x"), keyed=True)


async def test_a_lone_keyed_write_that_raises_leaves_nothing(tmp_path: Path) -> None:
    """A batch of one runs without a savepoint: its failure rolls back the whole transaction,
    and the writer is usable at once."""

    def insert_then_fail(conn: sqlite3.Connection) -> None:
        insert_channel("half")(conn)
        raise RuntimeError("boom")

    async with await Database.open(tmp_path / "loop.db") as db:
        with pytest.raises(RuntimeError, match="boom"):
            await db.write(insert_then_fail, keyed=True)
        with pytest.raises(ConstraintViolation):
            await db.write(lambda c: insert_channel("x")(c) and insert_channel("x")(c), keyed=True)
        assert await db.write(insert_channel("after"), keyed=True) == "after"
        assert await db.read(channel_ids) == ["after"]
        stats = db.statistics()
    assert (stats.commits, stats.writes_committed) == (1, 1)
