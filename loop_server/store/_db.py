"""A small Trio wrapper over stdlib sqlite3: one writer connection, a pool of readers.

Why this shape: SQLite allows one writer at a time, and in WAL mode readers never wait for it
(each read sees the last committed snapshot). So writes are serialised here, on one connection,
instead of contending for SQLite's lock with busy-waits — and writes that queue meanwhile are
committed together (group commit, see ``_group_commit``); reads get their own connections and
run in parallel with the write. Every call runs its function in a worker
thread so a slow query or an fsync never blocks the Trio event loop — except a *keyed* read
(``read(fn, keyed=True)``): a lookup by key or a LIMITed index range touches a few pages and
takes ~30 µs, while the hop to a worker thread and back costs the event loop's thread
100–185 µs of CPU and ~380 µs of wall time (measured here, 2 CPUs), so such reads run on the
event loop's own thread, on a reader connection of their own. If SQLite answers that one
BUSY (WAL recovery, another process holding an exclusive lock), the read is retried the usual
way, in a worker thread that waits ``busy_timeout``.

Cancellation: the thread call uses ``abandon_on_cancel=False`` (Trio's default), so once a
function has started, the awaiting task waits for it to finish even if cancelled; a write has
then either committed or rolled back completely, never "maybe". A cancel that arrives while the
call is still queued for a connection simply means the function never runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import trio

from loop_server.store._group_commit import GroupCommitter, is_lock_error, store_error
from loop_server.store._migrations import migrate
from loop_server.store._sql import DatabaseStatistics, Dialect
from loop_server.store.errors import StoreError
from loop_server.timefmt import now_utc

T = TypeVar("T")


def _connect(target: str, *, uri: bool, busy_timeout: float) -> sqlite3.Connection:
    # isolation_level=None: the sqlite3 module must not open transactions behind our back;
    # this module issues BEGIN/COMMIT itself. check_same_thread=False: a connection is used by
    # whichever worker thread runs the call, but only ever by one at a time (see Database).
    conn = sqlite3.connect(
        target,
        uri=uri,
        timeout=busy_timeout,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    except BaseException:
        conn.close()
        raise
    return conn


def _open_sync(path: Path, readers: int, busy_timeout: float) -> Database:
    # sqlite3's own message for these is "unable to open database file", which names no cause.
    if not path.parent.is_dir():
        raise StoreError(f"cannot open database {path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise StoreError(f"cannot open database {path}: it is a directory")
    opened: list[sqlite3.Connection] = []
    try:
        writer = _connect(str(path), uri=False, busy_timeout=busy_timeout)
        opened.append(writer)
        mode = writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"WAL mode refused (journal mode is {mode!r})")
        writer.execute("PRAGMA foreign_keys = ON")
        # FULL: a committed write survives power loss, not only a crash of this process.
        writer.execute("PRAGMA synchronous = FULL")
        migrate(writer, now_utc())
        # From here the writer waits for no lock but in a worker thread: the group committer
        # raises it around the BEGIN of a batch it runs there (``_group_commit.run_batch``).
        writer.execute("PRAGMA busy_timeout = 0")
        # Readers are read-only at the SQLite level, so a read function cannot write by mistake.
        ro_uri = path.absolute().as_uri() + "?mode=ro"
        pool: list[sqlite3.Connection] = []
        for _ in range(readers):
            reader = _connect(ro_uri, uri=True, busy_timeout=busy_timeout)
            opened.append(reader)
            reader.execute("PRAGMA query_only = ON")
            pool.append(reader)
        # The keyed reads' connection never waits for a lock: the event loop runs it.
        keyed = _connect(ro_uri, uri=True, busy_timeout=0)
        opened.append(keyed)
        keyed.execute("PRAGMA query_only = ON")
    except (sqlite3.Error, StoreError) as exc:
        for conn in opened:
            conn.close()
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    except BaseException:
        for conn in opened:
            conn.close()
        raise
    return Database(path, writer, pool, keyed, busy_timeout=busy_timeout)


def _run_read(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    # One read transaction around the whole function: several SELECTs see one snapshot.
    try:
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise store_error(exc) from exc


class _Busy(Exception):
    """The keyed reader met a lock: read in a worker thread instead."""


def _run_keyed_read(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    try:
        return _run_read(conn, fn)
    except StoreError as exc:
        if is_lock_error(exc.__cause__):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _Busy from exc
        raise


class Database:
    """Build with ``await Database.open(path)``; close with ``await db.close()`` (or async with).

    Writes are group-committed (``_group_commit``): writes queued while a commit runs share
    the next transaction and its fsync, each in its own savepoint, and none returns before its
    transaction has committed.

    Functions given to ``read``/``write`` receive a ``sqlite3.Connection`` and run in a worker
    thread; they must not manage transactions themselves or keep the connection, and should
    not wait on anything slow (a write holds the only writer while it runs). ``sqlite3.Error``
    raised inside comes out as ``StoreError`` (integrity errors as ``ConstraintViolation``);
    any other exception comes out unchanged.
    """

    dialect: Dialect = "sqlite"

    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection,
        readers: list[sqlite3.Connection],
        keyed: sqlite3.Connection,
        *,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = path
        self._writer = writer
        self._readers = readers
        # Used only from the Trio thread, one call at a time (a keyed read never awaits).
        self._keyed = keyed
        self._keyed_reads = 0
        self._keyed_fallbacks = 0
        # Readers not in use. Only touched from the Trio thread, so no lock is needed; the
        # limiter guarantees there is one free whenever a token is held.
        self._idle = list(readers)
        self._read_limiter = trio.CapacityLimiter(len(readers))
        # Bounds this database's worker threads on its own, so it neither waits for nor starves
        # other users of Trio's shared default thread limiter (e.g. the docker SDK).
        self._thread_limiter = trio.CapacityLimiter(len(readers) + 1)
        self._writes = GroupCommitter(
            writer, self._thread_limiter, busy_timeout_ms=int(busy_timeout * 1000)
        )
        self._closing = False  # close() has begun: new writes are refused
        self._close_lock = trio.Lock()  # concurrent close() calls queue instead of colliding
        self._closed = False

    @classmethod
    async def open(cls, path: Path, *, readers: int = 4, busy_timeout: float = 5.0) -> Database:
        """Create or open the file, switch to WAL, apply migrations, open the connections.

        Raises ``StoreError`` when the path is unusable: missing directory, a directory, not a
        database, locked by another process for longer than ``busy_timeout`` seconds, or a
        schema newer than this code.
        """
        if readers < 1:
            raise ValueError("readers must be >= 1")
        return await trio.to_thread.run_sync(_open_sync, Path(path), readers, busy_timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def read(self, fn: Callable[[sqlite3.Connection], T], *, keyed: bool = False) -> T:
        """Run ``fn`` on a pooled read-only connection, inside one read transaction.

        ``keyed``: ``fn`` reads rows by a key or a LIMITed index range (bounded, a few pages),
        so it runs on the event loop's thread, without a thread hop (see the module doc).
        """
        if keyed:
            # A full checkpoint (~10 µs), as every Trio await is: other tasks run first, and
            # callers that count on an await letting them in are not surprised.
            await trio.lowlevel.checkpoint()
            self._check_open()
            try:
                result = _run_keyed_read(self._keyed, fn)
            except _Busy:
                self._keyed_fallbacks += 1
            else:
                self._keyed_reads += 1
                return result
        async with self._read_limiter:
            self._check_open()
            conn = self._idle.pop()
            try:
                return await trio.to_thread.run_sync(
                    _run_read, conn, fn, limiter=self._thread_limiter
                )
            finally:
                self._idle.append(conn)

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, keyed: bool = False) -> T:
        """Run ``fn`` on the writer inside a transaction (possibly shared, see the class doc);
        its changes are undone if it raises, and it returns once they are committed.

        ``keyed``: ``fn`` inserts rows or changes rows by their key (a few statements), so
        its SQL may run on the event loop's thread; the COMMIT never does (``_group_commit``).
        """
        if self._closing:
            raise StoreError(f"database {self.path} is closed")
        result: T = await self._writes.submit(fn, keyed=keyed)
        return result

    def statistics(self) -> DatabaseStatistics:
        reads = self._read_limiter.statistics()
        counters = self._writes.counters
        return DatabaseStatistics(
            readers=len(self._readers),
            readers_busy=reads.borrowed_tokens,
            reads_waiting=reads.tasks_waiting,
            write_running=self._writes.committing,
            writes_waiting=len(self._writes.queue),
            closed=self._closed,
            commits=counters.commits,
            writes_committed=counters.writes,
            largest_batch=counters.largest_batch,
            inline_write_batches=counters.inline_batches,
            keyed_reads=self._keyed_reads,
            keyed_fallbacks=self._keyed_fallbacks,
        )

    async def close(self) -> None:
        """Wait for calls already queued or running, then close every connection. Idempotent.

        Shielded: a shutdown that is being cancelled must still release the file cleanly
        (closing the last connection checkpoints the WAL into the main file).
        """
        with trio.CancelScope(shield=True):
            # Writes queued before close() still commit; later ones are refused. Then holding
            # every reader token means no read is running; that limiter is FIFO, so reads
            # queued before close() still run, and reads queued after it fail in _check_open().
            self._closing = True
            async with self._close_lock:
                await self._writes.drain()
                borrowers = [object() for _ in self._readers]
                for borrower in borrowers:
                    await self._read_limiter.acquire_on_behalf_of(borrower)
                try:
                    if self._closed:
                        return
                    self._closed = True
                    await trio.to_thread.run_sync(self._close_connections)
                finally:
                    for borrower in borrowers:
                        self._read_limiter.release_on_behalf_of(borrower)

    def _close_connections(self) -> None:
        self._keyed.close()
        for conn in self._readers:
            conn.close()
        self._writer.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"database {self.path} is closed")
