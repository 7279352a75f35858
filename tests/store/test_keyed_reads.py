"""Keyed reads (``Database.read(fn, keyed=True)``): on the event loop's thread, the same answers
as a pooled read, a worker thread when SQLite meets a lock, and the usual errors."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import trio

from loop_server.store import Database, Store, StoreError

from .helpers import add_channel, channel_ids, insert_channel


async def test_a_keyed_read_runs_on_the_event_loops_thread(tmp_path: Path) -> None:
    threads: list[int] = []

    def where(conn: sqlite3.Connection) -> int:
        threads.append(threading.get_ident())
        return len(channel_ids(conn))

    async with await Database.open(tmp_path / "loop.db") as db:
        assert await db.read(where, keyed=True) == 0
        assert await db.read(where) == 0
        stats = db.statistics()
    assert threads[0] == threading.get_ident()
    assert threads[1] != threading.get_ident()
    assert (stats.keyed_reads, stats.keyed_fallbacks) == (1, 0)


async def test_a_keyed_read_sees_every_write_that_returned(tmp_path: Path) -> None:
    async with await Database.open(tmp_path / "loop.db") as db:
        for n in range(20):
            await db.write(insert_channel(f"c{n:02d}"))
            keyed = await db.read(channel_ids, keyed=True)
            assert keyed == await db.read(channel_ids)
            assert len(keyed) == n + 1


async def test_a_keyed_read_that_meets_a_lock_is_read_again_in_a_worker_thread(
    tmp_path: Path,
) -> None:
    """A real SQLITE_BUSY: the first attempt asks for the write lock another connection holds,
    with no wait; the fallback, in a worker thread, finds it free."""
    path = tmp_path / "loop.db"
    attempts: list[int] = []
    async with await Database.open(path) as db:
        await db.write(insert_channel("seen"))
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        side = sqlite3.connect(path, isolation_level=None, timeout=0)

        def locked_once(conn: sqlite3.Connection) -> list[str]:
            attempts.append(threading.get_ident())
            if len(attempts) == 1:
                try:
                    side.execute("BEGIN IMMEDIATE")  # raises: the holder has the lock
                finally:
                    holder.execute("ROLLBACK")
            return channel_ids(conn)

        try:
            assert await db.read(locked_once, keyed=True) == ["seen"]
            stats = db.statistics()
        finally:
            holder.close()
            side.close()
    assert len(attempts) == 2
    assert attempts[0] == threading.get_ident()
    assert attempts[1] != threading.get_ident()
    assert (stats.keyed_reads, stats.keyed_fallbacks) == (0, 1)


async def test_a_keyed_read_reports_errors_and_leaves_no_transaction_open(
    tmp_path: Path,
) -> None:
    async with await Database.open(tmp_path / "loop.db") as db:
        with pytest.raises(StoreError, match="no such table"):
            await db.read(lambda c: c.execute("SELECT * FROM nowhere").fetchall(), keyed=True)
        with pytest.raises(StoreError, match="readonly"):
            await db.read(insert_channel("x"), keyed=True)
        with pytest.raises(KeyError):
            await db.read(lambda c: {}["missing"], keyed=True)
        # The connection is usable again: no transaction was left open by the failures.
        await db.write(insert_channel("after"))
        assert await db.read(channel_ids, keyed=True) == ["after"]


async def test_a_cancelled_keyed_read_does_not_run(tmp_path: Path) -> None:
    ran: list[bool] = []
    async with await Database.open(tmp_path / "loop.db") as db:
        with trio.CancelScope() as scope:
            scope.cancel()
            await db.read(lambda c: ran.append(True), keyed=True)
        assert scope.cancelled_caught
    assert ran == []


async def test_a_keyed_read_after_close_is_refused(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "loop.db")
    await db.close()
    with pytest.raises(StoreError, match="closed"):
        await db.read(channel_ids, keyed=True)


async def test_the_repositories_lookups_are_keyed(tmp_path: Path) -> None:
    """Channel, task and message lookups take no thread hop on SQLite."""
    async with await Store.open(tmp_path / "loop.db") as store:
        await add_channel(store, "c1")
        before = store.db.statistics().keyed_reads
        assert (await store.channels.get("c1")) is not None
        assert await store.messages.recent("c1", 10) == []
        assert await store.tasks.get(1) is None
        assert store.db.statistics().keyed_reads == before + 3
