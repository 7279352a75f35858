"""Shared values and builders for the store tests (fixtures are in conftest.py)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from loop_server.domain import ChannelUpsert, NewMessage
from loop_server.store import Store
from loop_server.timefmt import to_db

T0 = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)


def by_engine(store: Store, *, sqlite: str, postgres: str) -> str:
    """What to expect on the store's engine, where SQLite and PostgreSQL word it differently
    (error messages)."""
    return sqlite if store.db.dialect == "sqlite" else postgres


def check_failed(store: Store) -> str:
    return by_engine(store, sqlite="CHECK constraint failed", postgres="violates check constraint")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_message(channel_id: str, n: int, *, is_bot: bool = False) -> NewMessage:
    return NewMessage(
        channel_id=channel_id,
        msg_id=f"m{channel_id}-{n}",
        author_id="u1",
        author_name="alice",
        content=f"hello {n}",
        is_bot=is_bot,
        created_at=at(n),
    )


async def add_channel(
    store: Store,
    channel_id: str,
    *,
    name: str = "",
    dir_path: str = "",
    parent_id: str = "",
    platform: str = "",
    session_id: str = "",
) -> None:
    await store.channels.upsert(
        ChannelUpsert(
            channel_id=channel_id,
            name=name,
            dir_path=dir_path,
            parent_id=parent_id,
            platform=platform,
            session_id=session_id,
        ),
        T0,
    )


async def bulk_messages(store: Store, channel_ids: list[str], count: int) -> None:
    """Insert ``count`` messages round-robin over the (existing) channels in one transaction;
    one insert() per row would fsync thousands of times."""

    def insert(conn: sqlite3.Connection) -> None:
        chat = dict(conn.execute("SELECT channel_id, id FROM channels").fetchall())
        conn.executemany(
            "INSERT INTO messages (chat_id, channel_id, msg_id, author_id, author_name, content,"
            " is_bot, is_processed, created_at) VALUES (?, ?, ?, 'u1', 'alice', ?, 0, 0, ?)",
            (
                (
                    chat[channel_ids[n % len(channel_ids)]],
                    channel_ids[n % len(channel_ids)],
                    f"bulk-{n}",
                    f"bulk {n}",
                    to_db(at(n)),
                )
                for n in range(count)
            ),
        )

    await store.db.write(insert)


def insert_channel(
    channel_id: str, seen: list[int] | None = None
) -> Callable[[sqlite3.Connection], str]:
    """A write that inserts a bare channel row (and notes, in ``seen``, the thread it ran on)."""

    def insert(conn: sqlite3.Connection) -> str:
        if seen is not None:
            seen.append(threading.get_ident())
        conn.execute(
            "INSERT INTO channels (channel_id, created_at, updated_at) VALUES (?, 'x', 'x')",
            (channel_id,),
        )
        return channel_id

    return insert


def channel_ids(conn: sqlite3.Connection) -> list[str]:
    """Every channel's id, in insertion order."""
    return [row[0] for row in conn.execute("SELECT channel_id FROM channels ORDER BY id")]
