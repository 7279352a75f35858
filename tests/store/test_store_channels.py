"""ChannelRepository: upsert semantics, lookups, per-platform directories, cascading deletes."""

from __future__ import annotations

import pytest

from loop_server.domain import Channel, ChannelUpsert
from loop_server.store import ConstraintViolation, Store
from loop_server.store._sql import SqlConnection

from .helpers import T0, add_channel, at, by_engine, new_message


async def test_upsert_inserts_and_returns_the_row(store: Store) -> None:
    stored = await store.channels.upsert(
        ChannelUpsert(
            channel_id="c1",
            guild_id="g1",
            name="general",
            dir_path="/src/app",
            platform="local",
            session_id="s1",
            permissions='{"owners":["u1"]}',
        ),
        T0,
    )
    assert stored == Channel(
        id=1,
        channel_id="c1",
        guild_id="g1",
        name="general",
        active=True,
        session_id="s1",
        dir_path="/src/app",
        parent_id="",
        platform="local",
        permissions='{"owners":["u1"]}',
        created_at=T0,
        updated_at=T0,
    )
    assert await store.channels.get("c1") == stored
    assert await store.channels.get("nope") is None


async def test_upsert_empty_values_do_not_overwrite(store: Store) -> None:
    await store.channels.upsert(
        ChannelUpsert(
            channel_id="c1",
            guild_id="g1",
            name="old",
            dir_path="/a",
            platform="discord",
            session_id="s1",
            permissions="p1",
        ),
        T0,
    )
    # Guild, name, dir_path, parent_id and active always take the new value; the other three
    # keep theirs when the new one is empty.
    updated = await store.channels.upsert(
        ChannelUpsert(channel_id="c1", name="new", active=False), at(60)
    )
    assert (updated.guild_id, updated.name, updated.dir_path, updated.active) == (
        "",
        "new",
        "",
        False,
    )
    assert (updated.platform, updated.session_id, updated.permissions) == (
        "discord",
        "s1",
        "p1",
    )
    assert (updated.id, updated.created_at, updated.updated_at) == (1, T0, at(60))

    replaced = await store.channels.upsert(
        ChannelUpsert(channel_id="c1", platform="slack", session_id="s2", permissions="p2"),
        at(120),
    )
    assert (replaced.platform, replaced.session_id, replaced.permissions) == ("slack", "s2", "p2")
    assert len(await store.channels.list()) == 1


async def test_list_orders_by_name_then_id(store: Store) -> None:
    for channel_id, name in [("c1", "beta"), ("c2", "alpha"), ("c3", "beta"), ("c4", "")]:
        await add_channel(store, channel_id, name=name)
    listed = await store.channels.list()
    assert [(c.channel_id, c.name) for c in listed] == [
        ("c4", ""),
        ("c2", "alpha"),
        ("c1", "beta"),
        ("c3", "beta"),
    ]


async def test_get_by_dir_path_is_per_platform_and_top_level_only(store: Store) -> None:
    await add_channel(store, "c1", dir_path="/src/app", platform="local")
    await add_channel(store, "c2", dir_path="/src/app", platform="discord")
    await add_channel(store, "t1", dir_path="/src/thread-only", platform="local", parent_id="c1")
    await add_channel(store, "c3", platform="local")  # no directory

    local = await store.channels.get_by_dir_path("/src/app", "local")
    discord = await store.channels.get_by_dir_path("/src/app", "discord")
    assert (local and local.channel_id, discord and discord.channel_id) == ("c1", "c2")
    assert await store.channels.get_by_dir_path("/src/app", "slack") is None
    assert await store.channels.get_by_dir_path("/src/thread-only", "local") is None
    assert await store.channels.get_by_dir_path("", "local") is None


async def test_dir_path_is_unique_per_platform_for_top_level_channels(store: Store) -> None:
    await add_channel(store, "c1", dir_path="/src/app", platform="local")
    unique = by_engine(
        store,
        sqlite="UNIQUE constraint failed",
        postgres='violates unique constraint "channels_dir_path_platform"',
    )
    with pytest.raises(ConstraintViolation, match=unique):
        await add_channel(store, "c2", dir_path="/src/app", platform="local")
    # Threads share their parent's directory, and empty dir_paths never collide.
    await add_channel(store, "t1", dir_path="/src/app", platform="local", parent_id="c1")
    await add_channel(store, "c3", platform="local")
    await add_channel(store, "c4", platform="local")
    # All names are empty, so the listing falls back to id order.
    assert [c.channel_id for c in await store.channels.list()] == ["c1", "t1", "c3", "c4"]


async def test_set_session_id(store: Store) -> None:
    await add_channel(store, "c1", session_id="old")
    assert await store.channels.set_session_id("c1", "new", at(5)) is True
    assert await store.channels.set_session_id("missing", "x", at(5)) is False
    channel = await store.channels.get("c1")
    assert channel is not None
    assert (channel.session_id, channel.updated_at) == ("new", at(5))


async def _message_channels(store: Store) -> list[tuple[str, int]]:
    return await store.db.read(
        lambda c: c.execute(
            "SELECT channel_id, count(*) FROM messages GROUP BY channel_id ORDER BY channel_id"
        ).fetchall()
    )


async def _seed_family(store: Store) -> None:
    await add_channel(store, "parent")
    await add_channel(store, "t1", parent_id="parent")
    await add_channel(store, "t2", parent_id="parent")
    await add_channel(store, "other")
    await add_channel(store, "other-thread", parent_id="other")
    n = 0
    for channel_id in ["parent", "t1", "t2", "other", "other-thread"]:
        for _ in range(3):
            n += 1
            await store.messages.insert(new_message(channel_id, n))


async def test_delete_removes_threads_and_all_their_messages(store: Store) -> None:
    await _seed_family(store)
    assert await store.channels.delete("parent") is True
    assert [c.channel_id for c in await store.channels.list()] == ["other", "other-thread"]
    assert await _message_channels(store) == [("other", 3), ("other-thread", 3)]
    assert await store.channels.delete("parent") is False


async def test_delete_children_keeps_the_parent(store: Store) -> None:
    await _seed_family(store)
    assert await store.channels.delete_children("parent") == 2
    assert [c.channel_id for c in await store.channels.list()] == [
        "parent",
        "other",
        "other-thread",
    ]
    assert await _message_channels(store) == [("other", 3), ("other-thread", 3), ("parent", 3)]
    # An empty parent id names no thread; it must not match every top-level channel.
    assert await store.channels.delete_children("") == 0
    assert len(await store.channels.list()) == 3


async def test_delete_is_one_transaction(store: Store) -> None:
    await _seed_family(store)

    # A trigger makes the last step (deleting the channel row) fail; the earlier deletes of
    # threads and messages must be rolled back with it.
    def add_trigger(conn: SqlConnection) -> None:
        if store.db.dialect == "sqlite":
            conn.execute(
                "CREATE TRIGGER refuse BEFORE DELETE ON channels WHEN old.channel_id = 'parent'"
                " BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
            return
        # The same refusal in PL/pgSQL, raised as a CHECK violation (an integrity error, as
        # SQLite's RAISE(ABORT) is).
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF old.channel_id = 'parent' THEN"
            " RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END IF;"
            " RETURN old; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON channels FOR EACH ROW EXECUTE FUNCTION refuse()"
        )

    await store.db.write(add_trigger)
    with pytest.raises(ConstraintViolation, match="refused"):
        await store.channels.delete("parent")
    assert len(await store.channels.list()) == 5
    assert await _message_channels(store) == [
        ("other", 3),
        ("other-thread", 3),
        ("parent", 3),
        ("t1", 3),
        ("t2", 3),
    ]


async def test_get_answers_every_change_to_the_row_it_keeps(store: Store) -> None:
    """``get`` answers from memory between writes (SQLite): each kind of write to ``channels``
    shows in the next ``get``."""
    assert await store.channels.get("c1") is None
    await store.messages.insert(new_message("c1", 1), auto_create_platform="local")
    created = await store.channels.get("c1")
    assert created is not None and created.name == "c1"
    assert await store.channels.get("c1") == created
    await add_channel(store, "c1", name="renamed")
    renamed = await store.channels.get("c1")
    assert renamed is not None and renamed.name == "renamed"
    assert await store.channels.set_session_id("c1", "s-42", at(5))
    resumed = await store.channels.get("c1")
    assert resumed is not None and resumed.session_id == "s-42"
    await add_channel(store, "t1", parent_id="c1")
    assert (await store.channels.get("t1")) is not None
    assert await store.channels.delete_children("c1") == 1
    assert await store.channels.get("t1") is None
    assert await store.channels.delete("c1")
    assert await store.channels.get("c1") is None
