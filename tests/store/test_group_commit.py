"""Group commit: writes queued behind a running commit share the next transaction.

A write is parked in its worker thread (a ``threading.Event``) so that others queue behind it
deterministically; then it is released and the counters, rows and outcomes are checked. Rules
as in conftest.py.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from loop_server.store import ConstraintViolation, Store, StoreError

from .helpers import channel_ids, insert_channel

# Group commit is how the one SQLite writer shares fsyncs; PostgreSQL commits each write itself.
pytestmark = pytest.mark.sqlite_only("group commit belongs to the SQLite writer")

RELEASE_TIMEOUT = 10.0


async def _behind_a_parked_write(
    store: Store, queued: list[Callable[[sqlite3.Connection], Any]]
) -> list[tuple[str, Any]]:
    """Park one write, queue ``queued`` behind it, release; each queued write's outcome."""
    parked = trio.Event()
    release = threading.Event()

    def parked_write(conn: sqlite3.Connection) -> None:
        insert_channel("parked")(conn)
        trio.from_thread.run_sync(parked.set)
        if not release.wait(RELEASE_TIMEOUT):
            raise TimeoutError("test never released the write")

    outcomes: list[tuple[str, Any]] = [("unset", None)] * len(queued)

    async def run(i: int, fn: Callable[[sqlite3.Connection], Any]) -> None:
        try:
            outcomes[i] = ("ok", await store.db.write(fn))
        except Exception as exc:
            outcomes[i] = ("error", exc)

    with trio.fail_after(RELEASE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.db.write, parked_write)
            await parked.wait()
            for i, fn in enumerate(queued):
                nursery.start_soon(run, i, fn)
            await trio.testing.wait_all_tasks_blocked()
            stats = store.db.statistics()
            assert (stats.write_running, stats.writes_waiting) == (True, len(queued))
            release.set()
    return outcomes


async def test_writes_queued_during_a_commit_share_the_next_one(store: Store) -> None:
    before = store.db.statistics()
    outcomes = await _behind_a_parked_write(store, [insert_channel(f"c{i}") for i in range(5)])
    assert outcomes == [("ok", f"c{i}") for i in range(5)]
    after = store.db.statistics()
    # Six acknowledged writes, two transactions: the parked one, then the five together.
    assert after.writes_committed - before.writes_committed == 6
    assert after.commits - before.commits == 2
    assert after.largest_batch == 5
    assert (after.write_running, after.writes_waiting) == (False, 0)
    stored = await store.db.read(channel_ids)
    assert stored[0] == "parked" and sorted(stored[1:]) == ["c0", "c1", "c2", "c3", "c4"]


async def test_a_failing_write_in_a_batch_is_undone_alone(store: Store) -> None:
    def insert_then_raise(conn: sqlite3.Connection) -> None:
        insert_channel("undone")(conn)
        raise ValueError("caller's own error")

    outcomes = await _behind_a_parked_write(
        store,
        [
            insert_channel("a"),
            insert_then_raise,
            insert_channel("a"),  # duplicate channel_id: a constraint violation
            insert_channel("b"),
        ],
    )
    assert outcomes[3] == ("ok", "b")
    kind, err = outcomes[1]
    assert kind == "error" and type(err) is ValueError and str(err) == "caller's own error"
    # Trio starts tasks in no fixed order: whichever "a" queued first wins, the other is refused.
    first, second = sorted([outcomes[0], outcomes[2]], key=lambda o: o[0] != "ok")
    assert first == ("ok", "a")
    kind, err = second
    assert kind == "error" and isinstance(err, ConstraintViolation)
    assert isinstance(err.__cause__, sqlite3.IntegrityError)
    assert sorted(await store.db.read(channel_ids)) == ["a", "b", "parked"]
    assert store.db.statistics().commits == 2


async def test_a_failed_commit_acknowledges_none_of_its_batch(store: Store) -> None:
    def orphan_message(conn: sqlite3.Connection) -> None:
        # A deferred foreign key is checked only at COMMIT, so the COMMIT itself fails.
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute(
            "INSERT INTO messages (chat_id, channel_id, msg_id, created_at)"
            " VALUES (999, 'nowhere', 'orphan', 'x')"
        )

    before = store.db.statistics()
    outcomes = await _behind_a_parked_write(store, [insert_channel("bystander"), orphan_message])
    for kind, err in outcomes:
        assert kind == "error"
        assert isinstance(err, StoreError) and "FOREIGN KEY constraint failed" in str(err)
    # Neither write was acknowledged, and neither is stored.
    assert await store.db.read(channel_ids) == ["parked"]
    count = await store.db.read(lambda c: c.execute("SELECT count(*) FROM messages").fetchone())
    assert count == (0,)
    assert store.db.statistics().writes_committed - before.writes_committed == 1
    # The writer is usable again afterwards.
    assert await store.db.write(insert_channel("after")) == "after"


async def test_a_queued_write_cancelled_leaves_its_batch_intact(store: Store) -> None:
    parked = trio.Event()
    release = threading.Event()

    def parked_write(conn: sqlite3.Connection) -> None:
        trio.from_thread.run_sync(parked.set)
        release.wait(RELEASE_TIMEOUT)

    results: list[str] = []

    async def keep(fn: Callable[[sqlite3.Connection], str]) -> None:
        results.append(await store.db.write(fn))

    with trio.fail_after(RELEASE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.db.write, parked_write)
            await parked.wait()
            nursery.start_soon(keep, insert_channel("kept-1"))
            with trio.CancelScope() as dropped:
                nursery.start_soon(keep, insert_channel("kept-2"))
                await trio.testing.wait_all_tasks_blocked()
                dropped.cancel()
                await store.db.write(insert_channel("dropped"))
            assert store.db.statistics().writes_waiting == 2
            release.set()
    assert sorted(results) == ["kept-1", "kept-2"]
    assert sorted(await store.db.read(channel_ids)) == ["kept-1", "kept-2"]


@pytest.mark.parametrize("writers", [1, 8])
async def test_concurrent_writes_each_get_their_own_result(store: Store, writers: int) -> None:
    results: dict[int, int] = {}

    async def write(i: int) -> None:
        def insert(conn: sqlite3.Connection) -> int:
            insert_channel(f"w{i}")(conn)
            rowid = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            assert isinstance(rowid, int)
            return rowid

        results[i] = await store.db.write(insert)

    with trio.fail_after(RELEASE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for i in range(writers):
                nursery.start_soon(write, i)
    rows = await store.db.read(lambda c: dict(c.execute("SELECT channel_id, id FROM channels")))
    assert {f"w{i}": rowid for i, rowid in results.items()} == rows
    stats = store.db.statistics()
    assert stats.writes_committed == writers
    assert 1 <= stats.commits <= writers


async def test_a_batch_s_writers_return_in_commit_order(store: Store) -> None:
    """What a writer does right after its write (the services publish an event) happens in the
    order the writes were stored, though Trio resumes tasks woken together in any order."""
    returned: list[str] = []

    async def write_and_note(channel_id: str) -> None:
        returned.append(await store.db.write(insert_channel(channel_id)))

    for round_ in range(5):  # several batches: one lucky order is no proof
        returned.clear()
        parked = trio.Event()
        release = threading.Event()

        def parked_write(
            conn: sqlite3.Connection,
            parked: trio.Event = parked,
            release: threading.Event = release,
        ) -> None:
            trio.from_thread.run_sync(parked.set)
            if not release.wait(RELEASE_TIMEOUT):
                raise TimeoutError("test never released the write")

        with trio.fail_after(RELEASE_TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store.db.write, parked_write)
                await parked.wait()
                for i in range(30):
                    nursery.start_soon(write_and_note, f"r{round_}-{i}")
                await trio.testing.wait_all_tasks_blocked()
                assert store.db.statistics().writes_waiting == 30
                release.set()
        stored = await store.db.read(channel_ids)
        assert len(returned) == 30
        assert returned == [c for c in stored if c.startswith(f"r{round_}-")]


async def test_writers_return_in_commit_order_across_batches(store: Store) -> None:
    """A batch committed while the one before it is still returning its writers waits for
    them: its first writer returns after the last writer of the batch before."""
    returned: list[str] = []
    parked, first_running, release, release_first = (
        trio.Event(),
        trio.Event(),
        threading.Event(),
        threading.Event(),
    )

    def parked_write(conn: sqlite3.Connection) -> None:
        trio.from_thread.run_sync(parked.set)
        if not release.wait(RELEASE_TIMEOUT):
            raise TimeoutError("test never released the write")

    def first_of_batch(conn: sqlite3.Connection) -> str:
        # Holds batch A's commit until batch B has queued behind it.
        trio.from_thread.run_sync(first_running.set)
        if not release_first.wait(RELEASE_TIMEOUT):
            raise TimeoutError("test never released batch A")
        return insert_channel("a-000")(conn)

    async def write_and_note(fn: Callable[[sqlite3.Connection], str]) -> None:
        returned.append(channel_id := await store.db.write(fn))
        if channel_id.startswith("a-"):
            # A slow publisher blocks the event loop: batch B's commit, in its worker thread,
            # is done long before batch A's last writer has returned.
            time.sleep(0.002)  # noqa: ASYNC251  (blocking on purpose)

    with trio.fail_after(RELEASE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.db.write, parked_write)
            await parked.wait()
            nursery.start_soon(write_and_note, first_of_batch)
            await trio.testing.wait_all_tasks_blocked()
            for i in range(1, 50):
                nursery.start_soon(write_and_note, insert_channel(f"a-{i:03d}"))
            await trio.testing.wait_all_tasks_blocked()
            release.set()  # batch A (a-000 … a-049) starts and holds in a-000
            await first_running.wait()
            for i in range(40):
                nursery.start_soon(write_and_note, insert_channel(f"b-{i:02d}"))
            await trio.testing.wait_all_tasks_blocked()
            assert store.db.statistics().writes_waiting == 40
            release_first.set()
    stored = await store.db.read(channel_ids)
    assert len(returned) == 90
    assert returned == [c for c in stored if c[0] in "ab"]
