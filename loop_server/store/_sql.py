"""What a repository's SQL function is given: the part of DB-API both backends share.

Repositories write one SQL text for SQLite and PostgreSQL: ``?`` placeholders (the PostgreSQL
connection translates them), ``INSERT ... RETURNING id`` for new ids (``lastrowid`` is
SQLite's alone), ``ON CONFLICT`` for upserts. A function is handed a ``SqlConnection`` inside a
transaction the ``Database`` owns; it must not commit, roll back or keep the connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

T = TypeVar("T")

#: Which engine a ``Database`` runs on; branch on it only where the SQL cannot be shared.
Dialect = Literal["sqlite", "postgres"]

#: A LIMITed range read of at most this many rows counts as keyed (``read(fn, keyed=True)``):
#: the API's largest page (200 messages) reads in well under a millisecond.
KEYED_ROWS = 200


@dataclass(frozen=True, slots=True)
class DatabaseStatistics:
    readers: int  # size of the reader pool (PostgreSQL: of the connection pool)
    readers_busy: int  # reads running now
    reads_waiting: int  # reads queued for a free reader
    write_running: bool
    writes_waiting: int  # writes queued behind the running one
    closed: bool
    commits: int = 0  # write transactions committed so far (one fsync each)
    writes_committed: int = 0  # writes acknowledged; above ``commits`` when commits were shared
    largest_batch: int = 0  # most writes one transaction has carried
    inline_write_batches: int = 0  # write batches whose SQL ran on the event loop's thread
    keyed_reads: int = 0  # keyed reads answered on the event loop's thread (SQLite)
    keyed_fallbacks: int = 0  # keyed reads that met a lock and went to a worker thread


class SqlCursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SqlConnection(Protocol):
    def execute(self, sql: str, parameters: Any = ..., /) -> SqlCursor: ...


class StoreDatabase(Protocol):
    """A database the repositories run on: SQLite (``_db.Database``, the embedded default) or
    PostgreSQL (``_postgres.PostgresDatabase``). ``read``/``write`` run ``fn`` in a worker
    thread inside one transaction; a write returns once committed. ``read(fn, keyed=True)``
    says ``fn`` reads rows by a key or a LIMITed index range: SQLite runs such a read on the
    event loop's thread, which is cheaper than the hop (``_db``'s module doc).
    ``write(fn, keyed=True)``: ``fn`` inserts rows or changes rows by key; SQLite runs its SQL
    on the loop's thread and only the COMMIT in a worker thread (``_group_commit``)."""

    @property
    def dialect(self) -> Dialect: ...

    async def read(self, fn: Callable[[SqlConnection], T], *, keyed: bool = False) -> T: ...

    async def write(self, fn: Callable[[SqlConnection], T], *, keyed: bool = False) -> T: ...

    async def close(self) -> None: ...

    def statistics(self) -> DatabaseStatistics: ...
