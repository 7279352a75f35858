"""The store: one database (SQLite, embedded, or PostgreSQL) and a repository per table.

Open everything at once with ``await open_store(database_url=..., path=...)`` (or
``Store.open(path)`` / ``Store.open_postgres(url)``); every repository method is ``async`` and
runs its SQL in a worker thread (see ``_db`` and ``_postgres``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from loop_server.store._db import Database
from loop_server.store._postgres import PostgresDatabase, display_url
from loop_server.store._sql import DatabaseStatistics, StoreDatabase
from loop_server.store.channels import ChannelRepository, ChannelsGeneration, MessagesGeneration
from loop_server.store.errors import ChannelNotFound, ConstraintViolation, StoreError
from loop_server.store.messages import MessageRepository
from loop_server.store.runs import TaskRunRepository
from loop_server.store.tasks import TaskRepository
from loop_server.store.turns import ChannelTurnRepository

__all__ = [
    "ChannelNotFound",
    "ChannelRepository",
    "ChannelTurnRepository",
    "ConstraintViolation",
    "Database",
    "DatabaseStatistics",
    "MessageRepository",
    "PostgresDatabase",
    "Store",
    "StoreDatabase",
    "StoreError",
    "TaskRepository",
    "TaskRunRepository",
    "open_store",
    "store_location",
]


@dataclass(frozen=True, slots=True)
class Store:
    db: StoreDatabase
    channels: ChannelRepository
    messages: MessageRepository
    tasks: TaskRepository
    runs: TaskRunRepository
    turns: ChannelTurnRepository

    @classmethod
    async def open(cls, path: Path, *, readers: int = 4, busy_timeout: float = 5.0) -> Store:
        db = await Database.open(path, readers=readers, busy_timeout=busy_timeout)
        # One counter for every write to channels' rows, one for messages' (what readers keep).
        generation, messages_generation = ChannelsGeneration(), MessagesGeneration()
        return cls(
            db=db,
            channels=ChannelRepository(db, generation, messages_generation),
            messages=MessageRepository(db, generation, messages_generation),
            tasks=TaskRepository(db),
            runs=TaskRunRepository(db),
            turns=ChannelTurnRepository(db),
        )

    @classmethod
    async def open_postgres(cls, url: str, *, pool_size: int = 8) -> Store:
        db = await PostgresDatabase.open(url, pool_size=pool_size)
        # Other instances write to the same database, so this process cannot know when rows
        # changed: no generation counters, hence no kept listings or history pages.
        return cls(
            db=db,
            channels=ChannelRepository(db, cached=False),
            messages=MessageRepository(db),
            tasks=TaskRepository(db),
            runs=TaskRunRepository(db),
            turns=ChannelTurnRepository(db),
        )

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def open_store(*, database_url: str, path: Path) -> Store:
    """PostgreSQL at ``database_url`` when it is set, else the SQLite file at ``path``."""
    if database_url:
        return await Store.open_postgres(database_url)
    return await Store.open(path)


def store_location(*, database_url: str, path: Path) -> str:
    """Where ``open_store`` keeps the data, fit for a message (a URL loses its password)."""
    return display_url(database_url) if database_url else str(path)
