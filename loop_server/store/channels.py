"""Channels and threads (SPEC §7.1, §7.2, §3.17)."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import trio

from loop_server.domain import Channel, ChannelUpsert
from loop_server.memo import Memo
from loop_server.store._sql import SqlConnection, StoreDatabase
from loop_server.timefmt import from_db, to_db

_T = TypeVar("_T")

_COLUMNS = (
    "id, channel_id, guild_id, name, active, session_id, dir_path, parent_id, platform,"
    " permissions, created_at, updated_at"
)


def channel_from_row(row: tuple[Any, ...]) -> Channel:
    return Channel(
        id=row[0],
        channel_id=row[1],
        guild_id=row[2],
        name=row[3],
        active=bool(row[4]),
        session_id=row[5],
        dir_path=row[6],
        parent_id=row[7],
        platform=row[8],
        permissions=row[9],
        created_at=from_db(row[10]),
        updated_at=from_db(row[11]),
    )


# platform/session_id/permissions keep their stored value when the new one is empty: callers
# that only know a channel's name or directory must not wipe its session or grants (SPEC §7.2).
# The stored values are named ``channels.x``: PostgreSQL refuses the bare names as ambiguous.
_UPSERT = """
INSERT INTO channels (channel_id, guild_id, name, active, session_id, dir_path, parent_id,
                      platform, permissions, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (channel_id) DO UPDATE SET
    guild_id    = excluded.guild_id,
    name        = excluded.name,
    dir_path    = excluded.dir_path,
    parent_id   = excluded.parent_id,
    active      = excluded.active,
    updated_at  = excluded.updated_at,
    platform    = CASE WHEN excluded.platform != '' THEN excluded.platform
                       ELSE channels.platform END,
    session_id  = CASE WHEN excluded.session_id != '' THEN excluded.session_id
                       ELSE channels.session_id END,
    permissions = CASE WHEN excluded.permissions != '' THEN excluded.permissions
                       ELSE channels.permissions END
"""


_CHILDREN = "SELECT channel_id FROM channels WHERE parent_id = ? AND parent_id != ''"


def delete_tasks_sync(conn: SqlConnection, channel_ids_query: str, *args: object) -> None:
    """Delete the scheduled tasks (and their run logs) of the channels the query selects: a
    task outliving its channel would fail on every run, or run for a channel id reused later."""
    tasks = f"SELECT id FROM scheduled_tasks WHERE channel_id IN ({channel_ids_query})"
    conn.execute(f"DELETE FROM task_run_logs WHERE task_id IN ({tasks})", args)
    conn.execute(f"DELETE FROM scheduled_tasks WHERE channel_id IN ({channel_ids_query})", args)


def delete_children_sync(conn: SqlConnection, parent_id: str) -> int:
    """Delete the threads of ``parent_id`` with their messages and tasks; return how many
    threads."""
    delete_tasks_sync(conn, _CHILDREN, parent_id)
    # Messages first: messages.chat_id references channels.id and foreign keys are on.
    conn.execute(
        "DELETE FROM messages WHERE chat_id IN"
        " (SELECT id FROM channels WHERE parent_id = ? AND parent_id != '')",
        (parent_id,),
    )
    cur = conn.execute("DELETE FROM channels WHERE parent_id = ? AND parent_id != ''", (parent_id,))
    return cur.rowcount


#: Bounds of the ``ChannelRepository.get`` answers kept: entries, and about their bytes.
_CHANNELS_KEPT = 1024
_CHANNEL_BYTES_KEPT = 4 << 20
_CHANNEL_OVERHEAD = 256  # a Channel's fixed fields and the entry, roughly, in bytes


def _channel_weight(channel: Channel | None) -> int:
    if channel is None:
        return _CHANNEL_OVERHEAD
    return (
        _CHANNEL_OVERHEAD
        + len(channel.name)
        + len(channel.dir_path)
        + len(channel.permissions)
        + len(channel.session_id)
    )


class ChannelsGeneration:
    """A counter that moves after every write that may have changed a row of ``channels``.

    Readers that keep something derived from the rows (the channel listing) compare it with the
    value they read it under. It moves *after* the write returns (committed, or failed), so a
    read begun under the new value can only see the new rows; one begun before may see either,
    and is kept under the old value, which no longer matches.
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def bump(self) -> None:
        self.value += 1


class MessagesGeneration(ChannelsGeneration):
    """The same for the rows of ``messages`` (history pages kept by ``MessageRepository``)."""

    __slots__ = ()


class ChannelRepository:
    def __init__(
        self,
        db: StoreDatabase,
        generation: ChannelsGeneration | None = None,
        messages_generation: MessagesGeneration | None = None,
        *,
        cached: bool = True,
    ) -> None:
        """``cached=False``: other processes write to the same database (PostgreSQL), so no
        generation counter can know when the rows changed, and ``generation`` is ``None``:
        readers must keep nothing derived from the rows."""
        self._db = db
        self.generation: ChannelsGeneration | None = None
        if cached:
            self.generation = generation if generation is not None else ChannelsGeneration()
        # Deleting a channel or its threads deletes their messages too.
        self._messages_generation = messages_generation if cached else None
        # ``get``'s answers by (channel id, the generation they were read under), see ``get``.
        # The value is a 1-tuple, so that a kept "no such channel" is told from a miss.
        self._by_id: Memo[tuple[str, int], tuple[Channel | None]] = Memo(
            max_entries=_CHANNELS_KEPT, max_weight=_CHANNEL_BYTES_KEPT
        )

    async def _write_with_messages(self, fn: Callable[[SqlConnection], _T]) -> _T:
        try:
            return await self._write(fn)
        finally:
            if self._messages_generation is not None:
                self._messages_generation.bump()

    async def _write(self, fn: Callable[[SqlConnection], _T], *, keyed: bool = False) -> _T:
        try:
            return await self._db.write(fn, keyed=keyed)
        finally:
            if self.generation is not None:
                self.generation.bump()

    async def list(self) -> builtins.list[Channel]:
        """Every channel and thread, by name then id (id makes equal names stable)."""

        def query(conn: SqlConnection) -> builtins.list[Channel]:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM channels ORDER BY name, id")
            return [channel_from_row(row) for row in rows]

        return await self._db.read(query)

    async def get(self, channel_id: str) -> Channel | None:
        """The channel or thread, or None.

        Answered again from memory while no write to ``channels`` has happened since it was
        read (the generation): every write, request and agent run looks its channel up, and
        the read and decode cost ~40 µs a time, a tenth of a whole request.
        """

        def query(conn: SqlConnection) -> Channel | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM channels WHERE channel_id = ?", (channel_id,)
            ).fetchone()
            return None if row is None else channel_from_row(row)

        generation = self.generation
        if generation is None:
            return await self._db.read(query, keyed=True)
        key = (channel_id, generation.value)
        kept = self._by_id.get(key)
        if kept is not None:
            await trio.lowlevel.checkpoint()  # an await that lets others run, as a read does
            return kept[0]
        channel = await self._db.read(query, keyed=True)
        self._by_id.put(key, (channel,), _channel_weight(channel))
        return channel

    async def get_by_dir_path(self, dir_path: str, platform: str) -> Channel | None:
        """The top-level channel for a directory on a platform; threads are never returned."""

        # `dir_path != ''` matches the partial unique index's condition, which lets SQLite use
        # it, and means an empty dir_path finds nothing rather than an arbitrary channel.
        def query(conn: SqlConnection) -> Channel | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM channels"
                " WHERE dir_path = ? AND platform = ? AND dir_path != '' AND parent_id = ''",
                (dir_path, platform),
            ).fetchone()
            return None if row is None else channel_from_row(row)

        return await self._db.read(query, keyed=True)

    async def upsert(self, channel: ChannelUpsert, now: datetime) -> Channel:
        """Insert, or update the existing row with the same channel_id; return the stored row.

        Raises ``ConstraintViolation`` if another top-level channel of the platform already
        has this ``dir_path``.
        """
        stamp = to_db(now)

        def update(conn: SqlConnection) -> Channel:
            conn.execute(
                _UPSERT,
                (
                    channel.channel_id,
                    channel.guild_id,
                    channel.name,
                    int(channel.active),
                    channel.session_id,
                    channel.dir_path,
                    channel.parent_id,
                    channel.platform,
                    channel.permissions,
                    stamp,
                    stamp,
                ),
            )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM channels WHERE channel_id = ?", (channel.channel_id,)
            ).fetchone()
            return channel_from_row(row)

        return await self._write(update, keyed=True)

    async def set_session_id(self, channel_id: str, session_id: str, now: datetime) -> bool:
        """Record the agent session to resume; False if the channel does not exist."""

        def update(conn: SqlConnection) -> bool:
            cur = conn.execute(
                "UPDATE channels SET session_id = ?, updated_at = ? WHERE channel_id = ?",
                (session_id, to_db(now), channel_id),
            )
            return cur.rowcount > 0

        return await self._write(update, keyed=True)

    async def delete(self, channel_id: str) -> bool:
        """Delete the channel, its threads, and all their messages and scheduled tasks (with
        their run logs) in one transaction.

        Returns False (and changes nothing) if the channel does not exist.
        """

        def delete(conn: SqlConnection) -> bool:
            row = conn.execute("SELECT id FROM channels WHERE channel_id = ?", (channel_id,))
            found = row.fetchone()
            if found is None:
                return False
            delete_children_sync(conn, channel_id)
            delete_tasks_sync(conn, "?", channel_id)
            conn.execute("DELETE FROM messages WHERE chat_id = ?", (found[0],))
            conn.execute("DELETE FROM channels WHERE id = ?", (found[0],))
            return True

        return await self._write_with_messages(delete)

    async def delete_children(self, parent_id: str) -> int:
        """Delete every thread of ``parent_id`` with its messages and tasks; return how many
        threads."""
        return await self._write_with_messages(lambda conn: delete_children_sync(conn, parent_id))
