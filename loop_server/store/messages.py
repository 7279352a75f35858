"""Chat messages and their history (SPEC §3.5, §7.2 GetMessagesCursor, A.5 step 1 and 4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loop_server.domain import Message, NewMessage
from loop_server.memo import Memo
from loop_server.store._sql import KEYED_ROWS, SqlConnection, StoreDatabase
from loop_server.store.channels import ChannelsGeneration, MessagesGeneration
from loop_server.store.errors import ChannelNotFound
from loop_server.timefmt import from_db, to_db

_COLUMNS = (
    "id, channel_id, msg_id, author_id, author_name, content, is_bot, is_processed, created_at"
)


def message_from_row(row: tuple[Any, ...]) -> Message:
    return Message(
        id=row[0],
        channel_id=row[1],
        msg_id=row[2],
        author_id=row[3],
        author_name=row[4],
        content=row[5],
        is_bot=bool(row[6]),
        is_processed=bool(row[7]),
        created_at=from_db(row[8]),
    )


def _check_limit(limit: int) -> None:
    # SQLite reads a negative LIMIT as "no limit": a bad value would return the whole table.
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")


#: Decoded rows, keyed by the whole row (so an entry is never stale): history pages read the
#: same messages again and again, and building a ``Message`` costs ~4 µs a row.
_DECODED_ENTRIES = 8192
_DECODED_BYTES = 16 * 1024 * 1024
_ROW_OVERHEAD = 256  # bytes a decoded row costs besides its content, roughly
_PAGES = 1024
_PAGE_OVERHEAD = 1024


def _decoded(memo: Memo[tuple[Any, ...], Message], row: tuple[Any, ...]) -> Message:
    message = memo.get(row)
    if message is None:
        message = message_from_row(row)
        memo.put(row, message, len(row[5]) + _ROW_OVERHEAD)
    return message


def _newest(
    conn: SqlConnection,
    channel_id: str,
    cursor: int,
    limit: int,
    memo: Memo[tuple[Any, ...], Message] | None = None,
) -> list[Message]:
    # Both forms are a backwards range scan of messages_channel_id_id that stops after `limit`
    # rows, so the cost does not grow with the size of the table or the depth of the cursor.
    if cursor <= 0:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE channel_id = ? ORDER BY id DESC LIMIT ?",
            (channel_id, limit),
        )
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE channel_id = ? AND id < ?"
            " ORDER BY id DESC LIMIT ?",
            (channel_id, cursor, limit),
        )
    if memo is None:
        return [message_from_row(row) for row in rows]
    return [_decoded(memo, row) for row in rows]


def _insert(
    conn: SqlConnection,
    message: NewMessage,
    auto_create_platform: str | None,
    created: list[str] | None = None,
) -> Message:
    created_at = to_db(message.created_at)
    found = conn.execute(
        "SELECT id FROM channels WHERE channel_id = ?", (message.channel_id,)
    ).fetchone()
    if found is not None:
        chat_id = found[0]
    elif auto_create_platform is None:
        raise ChannelNotFound(message.channel_id)
    else:
        # The message's own time stands for "now": the channel appears with it.
        cur = conn.execute(
            "INSERT INTO channels (channel_id, name, active, platform, created_at,"
            " updated_at) VALUES (?, ?, 1, ?, ?, ?) RETURNING id",
            (message.channel_id, message.channel_id, auto_create_platform, created_at, created_at),
        )
        chat_id = cur.fetchone()[0]
        if created is not None:
            created.append(message.channel_id)
    cur = conn.execute(
        "INSERT INTO messages (chat_id, channel_id, msg_id, author_id, author_name,"
        " content, is_bot, is_processed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (
            chat_id,
            message.channel_id,
            message.msg_id,
            message.author_id,
            message.author_name,
            message.content,
            int(message.is_bot),
            int(message.is_processed),
            created_at,
        ),
    )
    message_id: int = cur.fetchone()[0]
    return Message(
        id=message_id,
        channel_id=message.channel_id,
        msg_id=message.msg_id,
        author_id=message.author_id,
        author_name=message.author_name,
        content=message.content,
        is_bot=message.is_bot,
        is_processed=message.is_processed,
        # Round-tripped so the value equals what a later read returns (UTC, µs).
        created_at=from_db(created_at),
    )


class MessageRepository:
    def __init__(
        self,
        db: StoreDatabase,
        channels_generation: ChannelsGeneration | None = None,
        messages_generation: MessagesGeneration | None = None,
    ) -> None:
        self._db = db
        # Moved after every write to messages' rows here and in ChannelRepository (deletes);
        # without it, pages are not kept.
        self._messages_generation = messages_generation
        # Recent pages: (channel, cursor, limit) → (messages generation read under, page).
        self._pages: Memo[tuple[str, int, int], tuple[int, list[Message]]] = Memo(
            max_entries=_PAGES, max_weight=_DECODED_BYTES
        )
        # Moved when a message's insert created its channel (the listing's rows changed).
        self._channels_generation = channels_generation
        self._decoded: Memo[tuple[Any, ...], Message] = Memo(
            max_entries=_DECODED_ENTRIES, max_weight=_DECODED_BYTES
        )

    async def insert(
        self, message: NewMessage, *, auto_create_platform: str | None = None
    ) -> Message:
        """Store a message and return it with its id.

        With ``auto_create_platform``, an unknown channel is created first (active, named after
        its id, on that platform) in the same transaction (SPEC A.5: a message to an unknown
        channel id creates it). Without it, an unknown channel raises ``ChannelNotFound``.
        A duplicate ``msg_id`` raises ``ConstraintViolation``.
        """
        [stored] = await self.insert_many([message], auto_create_platform=auto_create_platform)
        return stored

    async def insert_many(
        self, messages: Sequence[NewMessage], *, auto_create_platform: str | None = None
    ) -> list[Message]:
        """``insert`` for several messages in one transaction: all are stored or none."""
        try:
            return await self._insert_many(messages, auto_create_platform)
        finally:
            if self._messages_generation is not None:
                self._messages_generation.bump()

    async def _insert_many(
        self, messages: Sequence[NewMessage], auto_create_platform: str | None
    ) -> list[Message]:
        if auto_create_platform is None or self._channels_generation is None:
            return await self._db.write(
                lambda conn: [_insert(conn, m, auto_create_platform) for m in messages],
                keyed=len(messages) <= KEYED_ROWS,
            )
        created: list[str] = []
        try:
            return await self._db.write(
                lambda conn: [_insert(conn, m, auto_create_platform, created) for m in messages],
                keyed=len(messages) <= KEYED_ROWS,
            )
        finally:
            if created:  # also when the transaction failed after it: a bump is always safe
                self._channels_generation.bump()

    async def page(self, channel_id: str, cursor: int, limit: int) -> list[Message]:
        """Upstream's GetMessagesCursor: newest first (id DESC), at most ``limit`` rows.

        ``cursor <= 0`` gives the newest rows; ``cursor > 0`` the rows with ``id < cursor``,
        so passing the last id of a page continues exactly where it ended. An unknown channel
        gives an empty list.
        """
        _check_limit(limit)
        generation = self._messages_generation
        if generation is None:
            return await self._read_page(channel_id, cursor, limit)
        # Unchanged since a page was read (no message written or deleted anywhere): the same
        # page, without the worker-thread hop and the SQL. The value is taken before the read,
        # and moves only after a write returns, so a kept page is never older than a write
        # that finished before it was asked for.
        seen = generation.value
        key = (channel_id, cursor, limit)
        kept = self._pages.get(key)
        if kept is not None and kept[0] == seen:
            return list(kept[1])  # a copy: the caller may change its list
        page = await self._read_page(channel_id, cursor, limit)
        self._pages.put(key, (seen, page), sum(len(m.content) for m in page) + _PAGE_OVERHEAD)
        return list(page)

    async def _read_page(self, channel_id: str, cursor: int, limit: int) -> list[Message]:
        memo = self._decoded
        return await self._db.read(
            lambda conn: _newest(conn, channel_id, cursor, limit, memo), keyed=limit <= KEYED_ROWS
        )

    async def recent(self, channel_id: str, limit: int) -> list[Message]:
        """The newest ``limit`` messages in chronological order (oldest first), for prompts."""
        _check_limit(limit)
        newest_first = await self._db.read(
            lambda conn: _newest(conn, channel_id, 0, limit), keyed=limit <= KEYED_ROWS
        )
        newest_first.reverse()
        return newest_first
