"""MessageRepository: insert (with channel auto-creation), cursor paging, recent history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from loop_server.domain import Message, NewMessage
from loop_server.store import ChannelNotFound, ConstraintViolation, Store

from .helpers import T0, add_channel, at, bulk_messages, by_engine, new_message


async def test_insert_returns_the_stored_message(store: Store) -> None:
    await add_channel(store, "c1")
    # A non-UTC time comes back as the same instant in UTC, exactly as a read returns it.
    plus_two = timezone(timedelta(hours=2))
    created = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=plus_two)
    inserted = await store.messages.insert(
        NewMessage(
            channel_id="c1",
            msg_id="m1",
            author_id="u1",
            author_name="alice",
            content="hello",
            is_bot=True,
            created_at=created,
            is_processed=True,
        )
    )
    expected = Message(
        id=1,
        channel_id="c1",
        msg_id="m1",
        author_id="u1",
        author_name="alice",
        content="hello",
        is_bot=True,
        is_processed=True,
        created_at=datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=T0.tzinfo),
    )
    assert inserted == expected
    assert await store.messages.page("c1", 0, 10) == [expected]


async def test_insert_into_unknown_channel_raises_and_stores_nothing(store: Store) -> None:
    with pytest.raises(ChannelNotFound, match="channel ghost not found") as info:
        await store.messages.insert(new_message("ghost", 1))
    assert info.value.channel_id == "ghost"
    assert await store.channels.list() == []
    assert await store.messages.page("ghost", 0, 10) == []


async def test_insert_auto_creates_an_active_channel(store: Store) -> None:
    inserted = await store.messages.insert(new_message("fresh", 7), auto_create_platform="local")
    channel = await store.channels.get("fresh")
    assert channel is not None
    assert (channel.id, channel.name, channel.platform, channel.active, channel.parent_id) == (
        1,
        "fresh",
        "local",
        True,
        "",
    )
    assert channel.created_at == at(7)
    # The second message finds the channel; no second row is created.
    second = await store.messages.insert(new_message("fresh", 8), auto_create_platform="slack")
    assert [c.platform for c in await store.channels.list()] == ["local"]
    assert [m.id for m in await store.messages.page("fresh", 0, 10)] == [second.id, inserted.id]


async def test_duplicate_msg_id_is_refused(store: Store) -> None:
    await add_channel(store, "c1")
    await store.messages.insert(new_message("c1", 1))
    unique = by_engine(store, sqlite=r"messages\.msg_id", postgres='"messages_msg_id_key"')
    with pytest.raises(ConstraintViolation, match=unique):
        await store.messages.insert(new_message("c1", 1))
    assert len(await store.messages.page("c1", 0, 10)) == 1


async def test_cursor_paging_visits_every_message_once_newest_first(store: Store) -> None:
    await add_channel(store, "a")
    await add_channel(store, "b")
    await add_channel(store, "c")
    await bulk_messages(store, ["a", "b", "c"], 3000)
    all_a = await store.db.read(
        lambda c: [r[0] for r in c.execute("SELECT id FROM messages WHERE channel_id = 'a'")]
    )
    assert len(all_a) == 1000

    # What the API does: ask limit+1, show limit, continue from the last shown id.
    limit = 50
    seen: list[int] = []
    cursor = 0
    pages = 0
    while True:
        rows = await store.messages.page("a", cursor, limit + 1)
        shown = rows[:limit]
        assert all(m.channel_id == "a" for m in shown)
        seen.extend(m.id for m in shown)
        pages += 1
        if len(rows) <= limit:
            break
        cursor = shown[-1].id
    assert pages == 20
    assert seen == sorted(all_a, reverse=True)
    assert len(set(seen)) == 1000
    # Newest page first; a cursor below every id gives nothing.
    first = await store.messages.page("a", 0, 3)
    assert [m.content for m in first] == ["bulk 2997", "bulk 2994", "bulk 2991"]
    assert await store.messages.page("a", min(all_a), 10) == []
    assert [m.id for m in await store.messages.page("a", -5, 2)] == seen[:2]


@pytest.mark.sqlite_only("asserts SQLite's EXPLAIN QUERY PLAN text")
async def test_page_is_an_index_range_scan(store: Store) -> None:
    plans = await store.db.read(
        lambda c: [
            " ".join(r[3] for r in c.execute("EXPLAIN QUERY PLAN " + sql, params))
            for sql, params in [
                (
                    "SELECT * FROM messages WHERE channel_id = ? ORDER BY id DESC LIMIT ?",
                    ("a", 51),
                ),
                (
                    "SELECT * FROM messages WHERE channel_id = ? AND id < ?"
                    " ORDER BY id DESC LIMIT ?",
                    ("a", 100, 51),
                ),
            ]
        ]
    )
    # No "USE TEMP B-TREE FOR ORDER BY": the index already gives id DESC order.
    assert plans == [
        "SEARCH messages USING INDEX messages_channel_id_id (channel_id=?)",
        "SEARCH messages USING INDEX messages_channel_id_id (channel_id=? AND id<?)",
    ]


async def test_recent_is_oldest_to_newest(store: Store) -> None:
    await add_channel(store, "c1")
    await add_channel(store, "c2")
    for n in range(1, 8):
        await store.messages.insert(new_message("c1" if n != 4 else "c2", n, is_bot=n % 2 == 0))
    recent = await store.messages.recent("c1", 3)
    assert [(m.content, m.is_bot) for m in recent] == [
        ("hello 5", False),
        ("hello 6", True),
        ("hello 7", False),
    ]
    assert [m.content for m in await store.messages.recent("c1", 100)] == [
        "hello 1",
        "hello 2",
        "hello 3",
        "hello 5",
        "hello 6",
        "hello 7",
    ]


@pytest.mark.parametrize("limit", [0, -1])
async def test_limit_must_be_positive(store: Store, limit: int) -> None:
    with pytest.raises(ValueError, match=f"limit must be >= 1, got {limit}"):
        await store.messages.page("c1", 0, limit)
    with pytest.raises(ValueError, match=f"limit must be >= 1, got {limit}"):
        await store.messages.recent("c1", limit)
