"""PostgresDatabase itself: migrations (once, concurrently, newer schema refused), the schema
matching SQLite's, errors mapped, broken connections dropped, transactions, close(), and the
``?`` translation. The shared behaviour of the repositories is the rest of tests/store, which
runs on both engines."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
import trio.testing

from loop_server.store import (
    ConstraintViolation,
    Database,
    PostgresDatabase,
    Store,
    StoreError,
)
from loop_server.store._migrations import MIGRATIONS, migrate_postgres
from loop_server.store._postgres import display_url, pyformat
from loop_server.store._sql import SqlConnection

from .helpers import add_channel, new_message

RELEASE_TIMEOUT = 10.0


def _channel_count(conn: SqlConnection) -> int:
    count: int = conn.execute("SELECT count(*) FROM channels").fetchone()[0]
    return count


def _insert_channel(conn: SqlConnection, channel_id: str) -> None:
    conn.execute(
        "INSERT INTO channels (channel_id, created_at, updated_at) VALUES (?, 'x', 'x')",
        (channel_id,),
    )


def _versions(conn: SqlConnection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


@pytest.fixture
def admin(postgres_url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A connection of the test's own to the same database (to look or to interfere)."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        yield conn


def test_every_migration_has_both_dialects() -> None:
    # One list of versions: each carries SQLite and PostgreSQL statements, none only one.
    assert [m.version for m in MIGRATIONS] == [1, 2, 3, 4, 5]
    for migration in MIGRATIONS:
        assert migration.statements, migration.name
        assert migration.postgres, migration.name


async def test_migrations_applied_once_and_reopen_is_idempotent(postgres_url: str) -> None:
    async with await PostgresDatabase.open(postgres_url) as db:
        assert await db.read(_versions) == [1, 2, 3, 4, 5]
        stamps = await db.read(_applied_at)
    async with await PostgresDatabase.open(postgres_url) as db:
        assert await db.read(_versions) == [1, 2, 3, 4, 5]
        assert await db.read(_applied_at) == stamps  # nothing applied again


def _applied_at(conn: SqlConnection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT applied_at FROM schema_migrations ORDER BY 1")]


def _schema_sqlite(path: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        schema = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
        schema["(indexes)"] = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return schema
    finally:
        conn.close()


def _schema_postgres(conn: SqlConnection) -> dict[str, list[str]]:
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            ' ORDER BY table_name COLLATE "C"'
        )
    ]
    schema = {
        t: [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = ? ORDER BY ordinal_position",
                (t,),
            )
        ]
        for t in tables
    }
    # Only the indexes the migrations name: PostgreSQL also lists those of its own that back
    # PRIMARY KEY and UNIQUE constraints, which SQLite calls sqlite_autoindex_* (left out).
    schema["(indexes)"] = [
        r[0]
        for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
            " AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'"
            ' ORDER BY indexname COLLATE "C"'
        )
    ]
    return schema


async def test_schema_matches_sqlite(postgres_url: str, tmp_path: Path) -> None:
    async with await Database.open(tmp_path / "loop.db"):
        pass
    async with await PostgresDatabase.open(postgres_url) as db:
        on_postgres = await db.read(_schema_postgres)
    assert on_postgres == _schema_sqlite(tmp_path / "loop.db")
    assert len(on_postgres["(indexes)"]) == 12


async def test_column_types_give_what_sqlite_gives(postgres_url: str) -> None:
    # Rows are tuples; ids, booleans and counts are ints; timestamps are the stored text.
    async with await Store.open_postgres(postgres_url) as store:
        await add_channel(store, "c1", name="one")
        await store.messages.insert(new_message("c1", 1, is_bot=True))
        row = await store.db.read(
            lambda c: c.execute(
                "SELECT m.id, m.chat_id, m.is_bot, m.is_processed, m.created_at, c.active,"
                " (SELECT count(*) FROM messages) FROM messages m JOIN channels c"
                " ON c.id = m.chat_id"
            ).fetchone()
        )
    assert type(row) is tuple
    assert row == (1, 1, 1, 0, "2026-03-01T10:00:01.000000Z", 1, 1)
    assert [type(v) for v in row] == [int, int, int, int, str, int, int]


async def test_concurrent_openers_apply_each_migration_once(postgres_url: str) -> None:
    # Two instances starting at once: without the advisory lock both would try to create the
    # same tables and one would fail; with it they take turns, and each version is applied
    # by exactly one of them.
    barrier = threading.Barrier(2, timeout=RELEASE_TIMEOUT)

    def opener() -> list[int]:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            barrier.wait()
            return migrate_postgres(conn, datetime(2026, 1, 1, tzinfo=UTC))

    results: list[list[int]] = []

    async def run() -> None:
        results.append(await trio.to_thread.run_sync(opener))

    with trio.fail_after(RELEASE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            nursery.start_soon(run)
    assert sorted(v for applied in results for v in applied) == [1, 2, 3, 4, 5]
    # And two whole databases opening at once both come up on the finished schema.
    with trio.fail_after(RELEASE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(_open_and_count, postgres_url)


async def _open_and_count(url: str) -> None:
    async with await PostgresDatabase.open(url) as db:
        assert await db.read(_versions) == [1, 2, 3, 4, 5]


async def test_fresh_databases_opening_at_once(postgres_url: str) -> None:
    with trio.fail_after(RELEASE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(_open_and_count, postgres_url)


async def test_newer_schema_is_refused(postgres_url: str) -> None:
    async with await PostgresDatabase.open(postgres_url) as db:
        await db.write(
            lambda c: c.execute("INSERT INTO schema_migrations VALUES (99, '2030-01-01')")
        )
    with pytest.raises(StoreError) as info:
        await PostgresDatabase.open(postgres_url)
    assert str(info.value) == (
        f"cannot open database {postgres_url}: database schema version 99 is newer than this"
        " server knows (5); upgrade loop-server"
    )


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so no one else takes it), not
    listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


async def test_unreachable_server_is_store_error_without_the_password(closed_port: int) -> None:
    url = f"postgresql://loop:s3cret@127.0.0.1:{closed_port}/loop"
    with pytest.raises(StoreError) as info:
        await PostgresDatabase.open(url, connect_timeout=2)
    message = str(info.value)
    shown = f"postgresql://loop@127.0.0.1:{closed_port}/loop"
    assert message.startswith(f"cannot open database {shown}: ")
    assert "s3cret" not in message


def test_display_url_drops_passwords() -> None:
    assert display_url("postgresql://u:pw@h:5/db") == "postgresql://u@h:5/db"
    assert display_url("postgres://h/db?password=pw&sslmode=off") == "postgres://h/db?sslmode=off"
    assert display_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert display_url("host=h password=pw") == "<PostgreSQL conninfo>"


@pytest.mark.parametrize(
    ("sql", "params", "cause"),
    [
        (
            "INSERT INTO channels (channel_id, created_at, updated_at) VALUES ('c1', 'x', 'x')",
            None,
            psycopg.errors.UniqueViolation,
        ),
        (
            "INSERT INTO messages (chat_id, channel_id, msg_id, created_at)"
            " VALUES (?, 'c', 'm', 'x')",
            (999,),
            psycopg.errors.ForeignKeyViolation,
        ),
        (
            "INSERT INTO scheduled_tasks (channel_id, schedule, type, prompt, next_run_at,"
            " created_at, updated_at) VALUES ('c1', '1h', 'weekly', 'p', 'x', 'x', 'x')",
            None,
            psycopg.errors.CheckViolation,
        ),
        (
            "INSERT INTO channels (channel_id, created_at, updated_at) VALUES (?, NULL, 'x')",
            ("c2",),
            psycopg.errors.NotNullViolation,
        ),
    ],
    ids=["unique", "foreign-key", "check", "not-null"],
)
async def test_constraint_violations_are_mapped(
    postgres_url: str, sql: str, params: tuple[object, ...] | None, cause: type[Exception]
) -> None:
    async with await PostgresDatabase.open(postgres_url) as db:
        await db.write(lambda c: _insert_channel(c, "c1"))

        def violate(conn: SqlConnection) -> None:
            _insert_channel(conn, "c9")  # undone with the failing statement's transaction
            if params is None:
                conn.execute(sql)
            else:
                conn.execute(sql, params)

        with pytest.raises(ConstraintViolation) as info:
            await db.write(violate)
        assert isinstance(info.value.__cause__, cause)
        assert await db.read(_channel_count) == 1
        # Other SQL errors are plain StoreErrors.
        with pytest.raises(StoreError, match='relation "nope" does not exist') as plain:
            await db.read(lambda c: c.execute("SELECT * FROM nope"))
        assert type(plain.value) is StoreError


async def test_write_whose_function_raises_is_rolled_back(postgres_url: str) -> None:
    async with await PostgresDatabase.open(postgres_url, pool_size=1) as db:

        def insert_then_fail(conn: SqlConnection) -> None:
            _insert_channel(conn, "c1")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await db.write(insert_then_fail)
        assert await db.read(_channel_count) == 0
        # The one connection is usable again, with no transaction left open.
        await db.write(lambda c: _insert_channel(c, "c2"))
        assert await db.read(lambda c: c.execute("SELECT channel_id FROM channels").fetchall()) == [
            ("c2",)
        ]
        assert db.statistics().commits == 1


async def test_a_caught_sql_error_does_not_commit_half_a_write(postgres_url: str) -> None:
    # PostgreSQL aborts the transaction at the failed statement; COMMIT would silently roll
    # back. The write must fail loudly instead of reporting success.
    async with await PostgresDatabase.open(postgres_url) as db:

        def insert_then_swallow(conn: SqlConnection) -> str:
            _insert_channel(conn, "c1")
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT * FROM nope")
            return "done"

        with pytest.raises(StoreError, match="PostgreSQL aborted it, nothing was stored"):
            await db.write(insert_then_swallow)
        assert await db.read(_channel_count) == 0


async def test_reads_are_read_only(postgres_url: str) -> None:
    async with await PostgresDatabase.open(postgres_url) as db:
        with pytest.raises(StoreError, match="read-only transaction"):
            await db.read(lambda c: _insert_channel(c, "c1"))
        assert await db.read(_channel_count) == 0


def _terminate(admin: psycopg.Connection[tuple[Any, ...]], pid: int) -> None:
    row = admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
    assert row == (True,)


def _backend_pid(conn: SqlConnection) -> int:
    pid: int = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    return pid


async def test_idle_connection_terminated_is_replaced(
    postgres_url: str, admin: psycopg.Connection[tuple[Any, ...]]
) -> None:
    # As after a server restart: the pooled connection is dead when the next call takes it.
    async with await PostgresDatabase.open(postgres_url, pool_size=1) as db:
        first = await db.read(_backend_pid)
        _terminate(admin, first)
        # Only BEGIN failed on the dead connection, so the call runs on a new one.
        second = await db.read(_backend_pid)
        assert second != first
        await db.write(lambda c: _insert_channel(c, "c1"))
        assert await db.read(_channel_count) == 1


async def test_connection_broken_mid_call_fails_that_call_only(
    postgres_url: str, admin: psycopg.Connection[tuple[Any, ...]]
) -> None:
    async with await PostgresDatabase.open(postgres_url, pool_size=1) as db:
        pid = await db.read(_backend_pid)
        started = trio.Event()
        release = threading.Event()

        def parked_write(conn: SqlConnection) -> None:
            _insert_channel(conn, "lost")
            trio.from_thread.run_sync(started.set)
            if not release.wait(RELEASE_TIMEOUT):
                raise TimeoutError("test never released the write")
            _insert_channel(conn, "lost-too")

        async def write() -> None:
            with pytest.raises(StoreError) as info:
                await db.write(parked_write)
            assert type(info.value) is StoreError
            assert isinstance(info.value.__cause__, psycopg.OperationalError)

        with trio.fail_after(RELEASE_TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write)
                await started.wait()
                await trio.to_thread.run_sync(_terminate, admin, pid)
                release.set()
        # The broken connection was dropped, not put back: the next calls reconnect.
        assert await db.read(_backend_pid) != pid
        await db.write(lambda c: _insert_channel(c, "kept"))
        assert await db.read(
            lambda c: [r[0] for r in c.execute("SELECT channel_id FROM channels")]
        ) == ["kept"]


async def test_reads_and_writes_run_while_a_write_is_open(postgres_url: str) -> None:
    # No single writer here: a second write commits while the first is still open, and a read
    # sees only what was committed.
    async with await PostgresDatabase.open(postgres_url, pool_size=3) as db:
        started = trio.Event()
        release = threading.Event()

        def slow_write(conn: SqlConnection) -> None:
            _insert_channel(conn, "slow")
            trio.from_thread.run_sync(started.set)
            if not release.wait(RELEASE_TIMEOUT):
                raise TimeoutError("test never released the write")

        with trio.fail_after(RELEASE_TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(db.write, slow_write)
                await started.wait()
                stats = db.statistics()
                assert (stats.write_running, stats.writes_waiting, stats.readers) == (True, 0, 3)
                await db.write(lambda c: _insert_channel(c, "quick"))
                seen = await db.read(
                    lambda c: [r[0] for r in c.execute("SELECT channel_id FROM channels")]
                )
                assert seen == ["quick"]
                release.set()
        assert await db.read(_channel_count) == 2
        assert db.statistics().commits == 2


async def test_close_is_idempotent_and_later_calls_fail(postgres_url: str) -> None:
    db = await PostgresDatabase.open(postgres_url, pool_size=2)
    async with trio.open_nursery() as nursery:  # concurrent closes queue, then no-op
        nursery.start_soon(db.close)
        nursery.start_soon(db.close)
    await db.close()
    assert db.statistics().closed is True
    with pytest.raises(StoreError, match=f"database {postgres_url} is closed"):
        await db.read(_channel_count)
    with pytest.raises(StoreError, match="is closed"):
        await db.write(_channel_count)


async def test_close_waits_for_running_calls(postgres_url: str) -> None:
    db = await PostgresDatabase.open(postgres_url, pool_size=1)
    started = trio.Event()
    release = threading.Event()
    outcomes: list[str] = []

    def slow_read(conn: SqlConnection) -> int:
        trio.from_thread.run_sync(started.set)
        release.wait(RELEASE_TIMEOUT)
        return _channel_count(conn)

    async def running_read() -> None:
        outcomes.append(f"running read -> {await db.read(slow_read)}")

    async def close() -> None:
        await db.close()
        outcomes.append("closed")

    with trio.fail_after(RELEASE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(running_read)
            await started.wait()
            nursery.start_soon(close)
            await trio.testing.wait_all_tasks_blocked()
            assert outcomes == []
            release.set()
    assert outcomes == ["running read -> 0", "closed"]


async def test_pool_size_must_be_positive(postgres_url: str) -> None:
    with pytest.raises(ValueError, match="pool_size must be >= 1"):
        await PostgresDatabase.open(postgres_url, pool_size=0)


async def test_placeholders_and_percent_signs(postgres_url: str) -> None:
    async with await PostgresDatabase.open(postgres_url) as db:
        await add_channel_raw(db, "100%")
        row = await db.read(
            lambda c: c.execute(
                "SELECT ?::text || '?%', channel_id FROM channels WHERE channel_id LIKE '%\\%'"
                " ESCAPE '\\' AND channel_id = ?",
                ("a", "100%"),
            ).fetchone()
        )
        assert row == ("a?%", "100%")
        # Without parameters the text goes as it is.
        assert await db.read(lambda c: c.execute("SELECT '50%?'").fetchone()) == ("50%?",)


async def add_channel_raw(db: PostgresDatabase, channel_id: str) -> None:
    await db.write(lambda c: _insert_channel(c, channel_id))


def test_pyformat() -> None:
    assert pyformat("a = ? AND b = '?' AND c LIKE 'x%'") == "a = %s AND b = '?' AND c LIKE 'x%%'"
    assert pyformat("\"we?ird\" = ? AND d = 'it''s ?'") == "\"we?ird\" = %s AND d = 'it''s ?'"


async def test_two_stores_see_each_others_writes(postgres_url: str) -> None:
    # Other instances write too: no listing or history page may be kept from before.
    async with (
        await Store.open_postgres(postgres_url) as one,
        await Store.open_postgres(postgres_url) as two,
    ):
        assert one.channels.generation is None
        await add_channel(one, "c1", name="first")
        assert [c.channel_id for c in await two.channels.list()] == ["c1"]
        assert await two.messages.page("c1", 0, 10) == []
        await one.messages.insert(new_message("c1", 1))
        assert [m.msg_id for m in await two.messages.page("c1", 0, 10)] == ["mc1-1"]
        await two.channels.delete("c1")
        assert await one.channels.list() == []
        assert await one.messages.page("c1", 0, 10) == []
