"""Channel turns (docs/scale-out.md): the tickets that keep one agent run at a time per channel,
first come first served, across every instance on one database."""

from __future__ import annotations

from datetime import datetime

from loop_server.store._sql import SqlConnection, StoreDatabase
from loop_server.timefmt import to_db


class ChannelTurnRepository:
    def __init__(self, db: StoreDatabase) -> None:
        self._db = db

    async def take(self, channel_id: str, instance_id: str, now: datetime) -> int:
        """A ticket behind every ticket already taken for ``channel_id``; returns it."""

        def insert(conn: SqlConnection) -> int:
            row = conn.execute(
                "INSERT INTO channel_turns (channel_id, instance_id, queued_at) VALUES (?, ?, ?)"
                " RETURNING id",
                (channel_id, instance_id, to_db(now)),
            ).fetchone()
            return int(row[0])

        return await self._db.write(insert)

    async def first(self, channel_id: str) -> int | None:
        """The ticket whose turn it is in ``channel_id`` (None: no ticket)."""

        def query(conn: SqlConnection) -> int | None:
            row = conn.execute(
                "SELECT min(id) FROM channel_turns WHERE channel_id = ?", (channel_id,)
            ).fetchone()
            return None if row is None or row[0] is None else int(row[0])

        return await self._db.read(query, keyed=True)

    async def release(self, ticket: int) -> None:
        await self._db.write(
            lambda conn: conn.execute("DELETE FROM channel_turns WHERE id = ?", (ticket,))
        )

    async def drop_gone(self, stale_before: datetime, *, own: str | None = None) -> int:
        """Drop the tickets of instances whose last heartbeat (``scheduler_instances``) is
        older than ``stale_before`` or that never sent one, and with ``own``, that instance's
        tickets from an earlier life. Returns how many."""

        def delete(conn: SqlConnection) -> int:
            cur = conn.execute(
                "DELETE FROM channel_turns WHERE instance_id = ? OR instance_id NOT IN"
                " (SELECT instance_id FROM scheduler_instances WHERE heartbeat_at >= ?)",
                (own, to_db(stale_before)),
            )
            return cur.rowcount

        return await self._db.write(delete)
