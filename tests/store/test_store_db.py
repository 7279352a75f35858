"""Database: opening, migrations, transactions, concurrency, cancellation, unusable paths."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest
import trio
import trio.testing

from loop_server.store import ConstraintViolation, Database, Store, StoreError
from loop_server.store._migrations import MIGRATIONS, Migration, check_order

from .helpers import T0, add_channel, by_engine, insert_channel

# A thread parked in a write waits at most this long for the test to release it, so a broken
# test fails instead of hanging (a worker thread cannot be cancelled).
RELEASE_TIMEOUT = 10.0


def _channel_count(conn: sqlite3.Connection) -> int:
    count: int = conn.execute("SELECT count(*) FROM channels").fetchone()[0]
    return count


async def test_migrations_applied_once_and_reopen_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "loop.db"
    async with await Database.open(path) as db:
        first = await db.read(
            lambda c: c.execute(
                "SELECT version, applied_at FROM schema_migrations ORDER BY version"
            ).fetchall()
        )
    assert [v for v, _ in first] == [1, 2, 3, 4, 5]
    assert len(MIGRATIONS) == 5

    async with await Database.open(path) as db:
        second = await db.read(
            lambda c: c.execute(
                "SELECT version, applied_at FROM schema_migrations ORDER BY version"
            ).fetchall()
        )
        tables = await db.read(
            lambda c: [
                r[0]
                for r in c.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
        )
        indexes = await db.read(
            lambda c: [
                r[0]
                for r in c.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index'"
                    " AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
        )
    # Same rows, same applied_at: nothing was re-applied.
    assert second == first
    assert tables == [
        "channel_turns",
        "channels",
        "messages",
        "scheduled_tasks",
        "scheduler_instances",
        "schema_migrations",
        "task_run_logs",
    ]
    assert indexes == [
        "channel_turns_channel_id_id",
        "channel_turns_instance_id",
        "channels_dir_path_platform",
        "channels_parent_id",
        "messages_channel_id_id",
        "messages_chat_id",
        "messages_is_processed",
        "scheduled_tasks_channel",
        "scheduled_tasks_due",
        "task_run_logs_one_running",
        "task_run_logs_running",
        "task_run_logs_task_id_id",
    ]


@pytest.mark.sqlite_only("SQLite PRAGMAs and its WAL file")
async def test_pragmas_wal_foreign_keys_synchronous_full(store: Store) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[str, int, int]:
        return (
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("PRAGMA foreign_keys").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0],
        )

    assert await store.db.write(pragmas) == ("wal", 1, 2)  # 2 = FULL
    assert await store.db.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert (tmp := store.db.path.with_name("loop.db-wal")).exists(), tmp

    # Foreign keys are enforced: a message pointing at no channel is refused.
    def orphan(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO messages (chat_id, channel_id, msg_id, created_at)"
            " VALUES (999, 'c', 'm', 'x')"
        )

    with pytest.raises(ConstraintViolation, match="FOREIGN KEY"):
        await store.db.write(orphan)


async def test_readers_are_read_only(store: Store) -> None:
    refused = by_engine(
        store,
        sqlite="attempt to write a readonly database",
        postgres="cannot execute INSERT in a read-only transaction",
    )
    with pytest.raises(StoreError, match=refused):
        await store.db.read(insert_channel("c1"))
    assert await store.db.read(_channel_count) == 0


async def test_write_rolls_back_when_fn_raises(store: Store) -> None:
    def insert_then_fail(conn: sqlite3.Connection) -> None:
        insert_channel("c1")(conn)
        insert_channel("c2")(conn)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await store.db.write(insert_then_fail)
    assert await store.db.read(_channel_count) == 0
    # The writer is usable afterwards (no transaction left open).
    await store.db.write(insert_channel("c3"))
    assert await store.db.read(
        lambda c: c.execute("SELECT channel_id FROM channels").fetchall()
    ) == [("c3",)]


async def test_sql_error_in_write_is_store_error_and_rolls_back(store: Store) -> None:
    def insert_then_bad_sql(conn: sqlite3.Connection) -> None:
        insert_channel("c1")(conn)
        conn.execute("SELECT * FROM no_such_table")

    missing = by_engine(
        store,
        sqlite="no such table: no_such_table",
        postgres='relation "no_such_table" does not exist',
    )
    with pytest.raises(StoreError, match=missing) as info:
        await store.db.write(insert_then_bad_sql)
    assert type(info.value) is StoreError
    cause: type[Exception] = psycopg.errors.UndefinedTable
    if store.db.dialect == "sqlite":
        cause = sqlite3.OperationalError
    assert isinstance(info.value.__cause__, cause)
    assert await store.db.read(_channel_count) == 0


@pytest.mark.sqlite_only("SQLite has one writer that a second write queues behind")
async def test_reads_proceed_while_a_write_holds_the_writer(store: Store) -> None:
    await add_channel(store, "before")
    write_started = trio.Event()
    release = threading.Event()
    order: list[str] = []

    def slow_write(conn: sqlite3.Connection) -> None:
        insert_channel("during")(conn)
        trio.from_thread.run_sync(write_started.set)
        if not release.wait(RELEASE_TIMEOUT):
            raise TimeoutError("test never released the write")
        order.append("write committing")

    async def writer() -> None:
        await store.db.write(slow_write)
        order.append("write done")

    with trio.fail_after(RELEASE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            await write_started.wait()
            # A second write queues behind the running one.
            nursery.start_soon(store.db.write, insert_channel("queued"))
            await trio.testing.wait_all_tasks_blocked()
            stats = store.db.statistics()
            assert (stats.write_running, stats.writes_waiting) == (True, 1)

            # The read completes while the write is still open, and sees the last commit.
            seen = await store.db.read(
                lambda c: [r[0] for r in c.execute("SELECT channel_id FROM channels")]
            )
            order.append("read done")
            assert seen == ["before"]
            release.set()

    assert order == ["read done", "write committing", "write done"]
    names = await store.db.read(
        lambda c: [r[0] for r in c.execute("SELECT channel_id FROM channels ORDER BY id")]
    )
    assert names == ["before", "during", "queued"]
    assert store.db.statistics().writes_waiting == 0


async def test_cancelled_write_still_commits_fully(store: Store) -> None:
    started = trio.Event()
    release = threading.Event()
    results: list[str] = []

    def slow_write(conn: sqlite3.Connection) -> str:
        insert_channel("c1")(conn)
        trio.from_thread.run_sync(started.set)
        release.wait(RELEASE_TIMEOUT)
        insert_channel("c2")(conn)
        return "committed"

    cancel_scope = trio.CancelScope()

    async def cancellable_write() -> None:
        with cancel_scope:
            results.append(await store.db.write(slow_write))
            await trio.lowlevel.checkpoint()  # where the cancellation lands
            results.append("not reached")

    with trio.fail_after(RELEASE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancellable_write)
            await started.wait()
            cancel_scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            release.set()
    # Cancelled while its thread ran: the call still completed (both rows committed, result
    # delivered), and the cancellation took effect at the task's next checkpoint.
    assert results == ["committed"]
    assert cancel_scope.cancelled_caught is True
    assert await store.db.read(_channel_count) == 2


async def test_write_cancelled_while_queued_never_runs(store: Store) -> None:
    started = trio.Event()
    release = threading.Event()
    ran: list[str] = []

    def slow_write(conn: sqlite3.Connection) -> None:
        trio.from_thread.run_sync(started.set)
        release.wait(RELEASE_TIMEOUT)

    with trio.fail_after(RELEASE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.db.write, slow_write)
            await started.wait()
            with trio.move_on_after(0) as scope:
                await store.db.write(lambda c: ran.append("queued write"))
            release.set()
    assert scope.cancelled_caught
    assert ran == []


async def test_close_is_idempotent_and_later_calls_fail(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "loop.db", readers=2)
    assert db.statistics().readers == 2
    async with trio.open_nursery() as nursery:  # concurrent closes queue, then no-op
        nursery.start_soon(db.close)
        nursery.start_soon(db.close)
    await db.close()
    assert db.statistics().closed is True
    with pytest.raises(StoreError, match="is closed"):
        await db.read(_channel_count)
    with pytest.raises(StoreError, match="is closed"):
        await db.write(_channel_count)


async def test_close_waits_for_running_calls_and_refuses_queued_ones(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "loop.db", readers=1)
    started = trio.Event()
    release = threading.Event()
    outcomes: list[str] = []

    def slow_read(conn: sqlite3.Connection) -> int:
        trio.from_thread.run_sync(started.set)
        release.wait(RELEASE_TIMEOUT)
        return _channel_count(conn)

    async def running_read() -> None:
        outcomes.append(f"running read -> {await db.read(slow_read)}")

    async def late_read() -> None:
        try:
            await db.read(_channel_count)
        except StoreError as exc:
            outcomes.append(f"late read -> {exc}")

    async def close() -> None:
        await db.close()
        outcomes.append("closed")

    with trio.fail_after(RELEASE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(running_read)
            await started.wait()
            nursery.start_soon(close)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(late_read)
            await trio.testing.wait_all_tasks_blocked()
            assert outcomes == []  # close() is waiting for the running read
            release.set()
    assert outcomes == [
        "running read -> 0",
        "closed",
        f"late read -> database {tmp_path / 'loop.db'} is closed",
    ]


async def test_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "loop.db"
    async with await Store.open(path) as store:
        await add_channel(store, "c1", name="one")
    async with await Store.open(path) as store:
        channel = await store.channels.get("c1")
    assert channel is not None
    assert (channel.name, channel.created_at) == ("one", T0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing" / "loop.db", "does not exist"),
        (lambda p: p, "is a directory"),
        (lambda p: _garbage(p / "loop.db"), "not a database"),
        (lambda p: _garbage(p / "file") / "loop.db", "does not exist"),
    ],
    ids=["missing-dir", "directory", "not-a-database", "parent-is-a-file"],
)
async def test_unusable_path_is_store_error(tmp_path: Path, make: object, message: str) -> None:
    assert callable(make)
    path: Path = make(tmp_path)
    with pytest.raises(StoreError, match=message) as info:
        await Database.open(path)
    assert str(info.value).startswith(f"cannot open database {path}")


def _garbage(path: Path) -> Path:
    path.write_bytes(b"this is not sqlite" * 300)
    return path


async def test_locked_database_is_store_error(tmp_path: Path) -> None:
    path = tmp_path / "loop.db"
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("CREATE TABLE t (x)")
        other.execute("BEGIN EXCLUSIVE")  # another process holding the file
        with pytest.raises(StoreError, match="database is locked"):
            await Database.open(path, busy_timeout=0.05)
    finally:
        other.execute("ROLLBACK")
        other.close()
    # Once released, the same file opens and keeps the other table.
    async with await Database.open(path) as db:
        assert await db.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 0


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.db"
    async with await Database.open(path) as db:
        await db.write(
            lambda c: c.execute("INSERT INTO schema_migrations VALUES (99, '2030-01-01')")
        )
    with pytest.raises(StoreError, match="schema version 99 is newer than this server knows"):
        await Database.open(path)


def test_migration_versions_are_checked() -> None:
    check_order()
    bad = (Migration(1, "a", ()), Migration(3, "b", ()))
    with pytest.raises(AssertionError, match="'b' has version 3, expected 2"):
        check_order(bad)


async def test_readers_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="readers must be >= 1"):
        await Database.open(tmp_path / "loop.db", readers=0)
