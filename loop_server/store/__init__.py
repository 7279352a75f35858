"""The SQLite store: one ``Database`` (a writer and a pool of readers) and a repository per table.

Open everything at once with ``await Store.open(path)``; every repository method is ``async``
and runs its SQL in a worker thread (see ``_db``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from loop_server.store._db import Database
from loop_server.store._sql import DatabaseStatistics
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
    "Store",
    "StoreError",
    "TaskRepository",
    "TaskRunRepository",
]


@dataclass(frozen=True, slots=True)
class Store:
    db: Database
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
