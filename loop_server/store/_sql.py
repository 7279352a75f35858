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
    thread inside one transaction; a write returns once committed."""

    @property
    def dialect(self) -> Dialect: ...

    async def read(self, fn: Callable[[SqlConnection], T]) -> T: ...

    async def write(self, fn: Callable[[SqlConnection], T]) -> T: ...

    async def close(self) -> None: ...

    def statistics(self) -> DatabaseStatistics: ...
