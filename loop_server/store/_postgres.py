"""PostgreSQL for the store: ``PostgresDatabase``, the ``StoreDatabase`` used when
``database_url`` is set (several loop-server instances sharing one database).

Why synchronous psycopg in worker threads: psycopg's async API runs on asyncio only, and this
server runs on Trio. Its blocking API, called through ``trio.to_thread.run_sync`` as ``_db``
does with sqlite3, keeps the event loop free while a query or a network round trip waits; a
CapacityLimiter of its own bounds the threads, so the database neither waits for nor starves
other users of Trio's shared thread limiter.

Why a small pool of our own rather than ``psycopg_pool.ConnectionPool``: that pool queues a
caller by blocking the caller's thread, so a call waiting for a connection would hold a worker
thread and could not be cancelled while queued, and it runs maintenance threads of its own.
Here the queue is a Trio CapacityLimiter (FIFO, cancellable, and ``close()`` can wait for
everything queued before it, as ``Database.close`` does); connections are made lazily by the
worker that needs one, and one that broke is dropped and replaced on the next call. A fixed
size with no idle timeouts is all the store needs.

Transactions: every ``read`` and every ``write`` is one transaction (READ COMMITTED; reads are
READ ONLY) on one connection, committed before ``write`` returns and rolled back if the function
raises. Connections are in autocommit mode and the BEGIN/COMMIT/ROLLBACK are ours, so nothing is
left open between calls. Unlike SQLite there is no single writer: writes run in parallel, and
PostgreSQL's row locks and constraints keep them consistent.

Cancellation is ``_db``'s rule: once a function has started, the awaiting task waits for it to
finish; a call cancelled while queued for a connection never runs.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import trio
from psycopg.pq import TransactionStatus

from loop_server.store._migrations import migrate_postgres
from loop_server.store._sql import DatabaseStatistics, Dialect
from loop_server.store.errors import ConstraintViolation, StoreError
from loop_server.timefmt import now_utc

T = TypeVar("T")

Connection = psycopg.Connection[tuple[Any, ...]]
Cursor = psycopg.Cursor[tuple[Any, ...]]


def display_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        return "<PostgreSQL conninfo>"  # a key=value string: not worth parsing to print
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@functools.lru_cache(maxsize=1024)
def pyformat(sql: str) -> str:
    """The repositories' ``?`` placeholders as psycopg's ``%s``; a literal ``%`` doubled.

    psycopg reads ``%`` anywhere in a query that has parameters, even inside a string literal,
    so every ``%`` is doubled; a ``?`` inside a quoted literal or identifier stays as it is.
    Cached: the repositories send a few dozen distinct texts over and over.
    """
    out: list[str] = []
    quote = ""
    for ch in sql:
        if ch == "%":
            out.append("%%")
        elif quote:
            if ch == quote:  # a doubled quote ('') closes and reopens: still right
                quote = ""
            out.append(ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


def pg_store_error(exc: psycopg.Error) -> StoreError:
    # Class 23 (unique, foreign key, check, not null, exclusion): the write was refused.
    if isinstance(exc, psycopg.errors.IntegrityError):
        return ConstraintViolation(str(exc))
    return StoreError(str(exc))


class PostgresSession:
    """What a repository function is given: ``execute`` with ``?`` placeholders, returning a
    psycopg cursor (tuples; ``fetchone``, ``fetchall``, iteration, ``rowcount``)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] | None = None, /) -> Cursor:
        if parameters is None:
            # Without parameters psycopg sends the text as it is (no % parsing), and a text
            # without parameters has no placeholders to translate.
            return self._conn.execute(sql)
        return self._conn.execute(pyformat(sql), parameters)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]], /) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(pyformat(sql), seq)


def _unusable(conn: Connection) -> bool:
    return conn.closed or conn.broken


def _close_quietly(conn: Connection) -> None:
    with contextlib.suppress(psycopg.Error):  # already gone; closing only frees the socket
        conn.close()


def _rollback(conn: Connection) -> None:
    if _unusable(conn):
        return
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        # The error that got us here is the one to report; a connection that cannot even roll
        # back is closed, so it is dropped from the pool (the server aborts its transaction).
        _close_quietly(conn)


@dataclass(slots=True)
class _Slot:
    """The connection a call runs on; the worker thread may replace it (reconnect) or clear
    it (broken), and the caller puts back whatever is left."""

    conn: Connection | None


class PostgresDatabase:
    """Build with ``await PostgresDatabase.open(url)``; close with ``await db.close()`` (or
    async with). ``psycopg.Error`` raised inside a function comes out as ``StoreError``
    (integrity errors as ``ConstraintViolation``); any other exception comes out unchanged."""

    dialect: Dialect = "postgres"

    def __init__(
        self, url: str, first: Connection, *, pool_size: int, connect_timeout: float
    ) -> None:
        self._conninfo = url
        self.url = display_url(url)  # safe to show: no password
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        # Connections not in use (at most pool_size; fewer until needed). Only touched from the
        # Trio thread; a token of _limiter entitles its holder to one of them, or to make one.
        self._idle: list[Connection] = [first]
        self._limiter = trio.CapacityLimiter(pool_size)
        self._thread_limiter = trio.CapacityLimiter(pool_size)
        self._waiting = {"read": 0, "write": 0}
        self._busy = {"read": 0, "write": 0}
        self._commits = 0
        self._closing = False  # close() has begun: new writes are refused
        self._close_lock = trio.Lock()
        self._closed = False

    @classmethod
    async def open(
        cls, url: str, *, pool_size: int = 8, connect_timeout: float = 10.0
    ) -> PostgresDatabase:
        """Connect, apply migrations, and return the database with one pooled connection.

        Raises ``StoreError`` when the server cannot be reached, refuses the login, or holds
        a schema newer than this code.
        """
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        return await trio.to_thread.run_sync(
            functools.partial(_open_sync, url, pool_size=pool_size, connect_timeout=connect_timeout)
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def read(self, fn: Callable[[PostgresSession], T], *, keyed: bool = False) -> T:
        """Run ``fn`` in one READ ONLY transaction (in a worker thread, ``keyed`` or not: a
        PostgreSQL read waits on the network)."""
        return await self._call(fn, "read")

    async def write(self, fn: Callable[[PostgresSession], T], *, keyed: bool = False) -> T:
        """Run ``fn`` in one transaction; its changes are undone if it raises, and it returns
        once they are committed."""
        if self._closing:
            raise StoreError(f"database {self.url} is closed")
        result = await self._call(fn, "write")
        self._commits += 1
        return result

    async def _call(self, fn: Callable[[PostgresSession], T], kind: str) -> T:
        self._waiting[kind] += 1
        try:
            await self._limiter.acquire()
        finally:
            self._waiting[kind] -= 1
        try:
            self._check_open()
            slot = _Slot(self._idle.pop() if self._idle else None)
            self._busy[kind] += 1
            try:
                return await trio.to_thread.run_sync(
                    self._run, slot, fn, kind == "read", limiter=self._thread_limiter
                )
            finally:
                self._busy[kind] -= 1
                if slot.conn is not None:
                    self._idle.append(slot.conn)
        finally:
            self._limiter.release()

    def _connect(self) -> Connection:
        return _connect(self._conninfo, self._connect_timeout)

    def _begin(self, slot: _Slot, read_only: bool) -> Connection:
        begin = "BEGIN READ ONLY" if read_only else "BEGIN"
        reused = slot.conn is not None
        conn = slot.conn = slot.conn if slot.conn is not None else self._connect()
        try:
            conn.execute(begin)
        except psycopg.OperationalError:
            if not (reused and _unusable(conn)):
                raise
            # The idle connection died meanwhile (server restarted, backend terminated). Only
            # BEGIN was tried, so nothing of the call has run: a fresh connection is safe.
            _close_quietly(conn)
            slot.conn = None
            conn = slot.conn = self._connect()
            conn.execute(begin)
        return conn

    def _run(self, slot: _Slot, fn: Callable[[PostgresSession], T], read_only: bool) -> T:
        try:
            conn = self._begin(slot, read_only)
            try:
                result = fn(PostgresSession(conn))
            except BaseException:
                _rollback(conn)
                raise
            if conn.info.transaction_status == TransactionStatus.INERROR:
                # A statement failed and the function caught the error. PostgreSQL has aborted
                # the transaction, and COMMIT would quietly roll it back: say so instead.
                _rollback(conn)
                raise StoreError(
                    "a statement failed inside the transaction (the function caught the error);"
                    " PostgreSQL aborted it, nothing was stored"
                )
            conn.execute("COMMIT")
            return result
        except psycopg.Error as exc:
            raise pg_store_error(exc) from exc
        finally:
            # A connection that broke is never put back: the next call makes a new one.
            if slot.conn is not None and _unusable(slot.conn):
                _close_quietly(slot.conn)
                slot.conn = None

    def statistics(self) -> DatabaseStatistics:
        return DatabaseStatistics(
            readers=self._pool_size,
            readers_busy=self._busy["read"],
            reads_waiting=self._waiting["read"],
            write_running=self._busy["write"] > 0,
            writes_waiting=self._waiting["write"],
            closed=self._closed,
            commits=self._commits,
            writes_committed=self._commits,
            largest_batch=1 if self._commits else 0,  # no group commit: one write a commit
        )

    async def close(self) -> None:
        """Wait for calls already queued or running, then close every connection. Idempotent.

        Shielded, so a cancelled shutdown still closes the connections (and the server ends
        their sessions at once instead of when the sockets time out).
        """
        with trio.CancelScope(shield=True):
            # Holding every token means no call is running; the limiter is FIFO, so calls
            # queued before close() still run, and reads queued after it fail in _check_open.
            self._closing = True
            async with self._close_lock:
                borrowers = [object() for _ in range(self._pool_size)]
                for borrower in borrowers:
                    await self._limiter.acquire_on_behalf_of(borrower)
                try:
                    if self._closed:
                        return
                    self._closed = True
                    idle, self._idle = self._idle, []
                    await trio.to_thread.run_sync(_close_all, idle)
                finally:
                    for borrower in borrowers:
                        self._limiter.release_on_behalf_of(borrower)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"database {self.url} is closed")


def _connect(url: str, timeout: float) -> Connection:
    # autocommit: psycopg must not open transactions behind our back; _run issues them.
    return psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=max(1, round(timeout)),  # libpq takes whole seconds
        application_name="loop-server",
    )


def _close_all(conns: list[Connection]) -> None:
    for conn in conns:
        _close_quietly(conn)


def _open_sync(url: str, *, pool_size: int, connect_timeout: float) -> PostgresDatabase:
    shown = display_url(url)
    try:
        conn = _connect(url, connect_timeout)
    except psycopg.Error as exc:
        raise StoreError(f"cannot open database {shown}: {exc}") from exc
    try:
        migrate_postgres(conn, now_utc())
    except StoreError as exc:
        _close_quietly(conn)
        raise StoreError(f"cannot open database {shown}: {exc}") from exc
    except BaseException:
        _close_quietly(conn)
        raise
    return PostgresDatabase(url, conn, pool_size=pool_size, connect_timeout=connect_timeout)
