"""The owner/member model end to end: bootstrap mode, ``iamtheowner``, ``allow_user``,
``deny_user``, config grants, denials, and the grants stored in the channel row.

Rules: see this package's conftest (real SQLite, fixed clock, replies read from history).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from loop_server.commands import parse_stored
from loop_server.protocols import Interaction
from loop_server.store import Store
from tests.commands.conftest import Harness, grants_json, make_harness

NO_PERMISSION = "⛔ You don't have permission to use this command."
ONLY_OWNERS = "⛔ Only owners can manage permissions."
OWNER_EXISTS = "⛔ An owner is already configured. Use `/loop allow_user` to manage permissions."

EVERY_ROLE_COMMAND = [
    "schedule type=interval schedule=5m prompt=p",
    "tasks",
    "task 1",
    "cancel 1",
    "toggle 1",
    "edit 1 prompt=x",
    "status",
    "stop",
    "readme",
    "template-list",
    "template-add poll",
]


def stored(column: str) -> dict[str, Any]:
    return dict(json.loads(column))


@pytest.mark.parametrize("command", EVERY_ROLE_COMMAND)
async def test_bootstrap_mode_lets_anyone_run_commands(harness: Harness, command: str) -> None:
    replies = await harness.run(command, author="whoever")
    assert NO_PERMISSION not in replies


@pytest.mark.parametrize("command", ["allow_user U2", "deny_user U2"])
async def test_bootstrap_mode_lets_anyone_manage_permissions(
    harness: Harness, command: str
) -> None:
    assert (await harness.reply(command, author="whoever")).startswith("✅")


async def test_iamtheowner_in_bootstrap_mode(harness: Harness) -> None:
    assert await harness.permissions_column() == ""
    reply = await harness.reply("iamtheowner", author="alice")
    assert reply == "✅ <@alice> is now the owner of this channel."
    assert stored(await harness.permissions_column()) == {
        "owners": {"users": ["alice"], "roles": []},
        "members": {"users": [], "roles": []},
    }
    # Bootstrap mode is over: strangers are refused, alice is the owner.
    assert await harness.reply("status", author="bob") == NO_PERMISSION
    assert await harness.reply("iamtheowner", author="bob") == OWNER_EXISTS
    assert await harness.reply("status", author="alice") == "Loop bot is running."
    assert await harness.reply("iamtheowner", author="alice") == OWNER_EXISTS


async def test_owner_grants_and_revokes_members(harness: Harness) -> None:
    await harness.run("iamtheowner", author="alice")
    assert await harness.reply("allow_user bob", author="alice") == "✅ <@bob> granted member role."
    assert await harness.reply("status", author="bob") == "Loop bot is running."
    # Members may use commands but not manage permissions.
    assert await harness.reply("allow_user carol", author="bob") == ONLY_OWNERS
    assert await harness.reply("deny_user alice", author="bob") == ONLY_OWNERS
    assert await harness.reply("deny_user bob", author="alice") == (
        "✅ <@bob> removed from channel permissions."
    )
    assert await harness.reply("status", author="bob") == NO_PERMISSION
    assert stored(await harness.permissions_column()) == {
        "owners": {"users": ["alice"], "roles": []},
        "members": {"users": [], "roles": []},
    }


async def test_allow_user_as_owner_and_role_changes(harness: Harness) -> None:
    await harness.run("iamtheowner", author="alice")
    assert await harness.reply("allow_user bob owner", author="alice") == (
        "✅ <@bob> granted owner role."
    )
    assert (
        await harness.reply("allow_user carol", author="bob") == "✅ <@carol> granted member role."
    )
    # Re-granting moves a user between roles; it never lists them twice.
    assert await harness.reply("allow_user bob MEMBER", author="alice") == (
        "✅ <@bob> granted member role."
    )
    assert stored(await harness.permissions_column()) == {
        "owners": {"users": ["alice"], "roles": []},
        "members": {"users": ["carol", "bob"], "roles": []},
    }
    assert await harness.reply("allow_user dave", author="bob") == ONLY_OWNERS


async def test_allow_user_refuses_unknown_roles_and_missing_ids(harness: Harness) -> None:
    await harness.run("iamtheowner", author="alice")
    before = await harness.permissions_column()
    assert await harness.reply("allow_user bob admin", author="alice") == (
        "⛔ Unknown role: admin (use owner or member)."
    )
    assert await harness.reply("allow_user", author="alice") == (
        "Usage: `allow_user ID [owner|member]`"
    )
    assert await harness.reply("deny_user", author="alice") == "Usage: `deny_user ID`"
    assert await harness.permissions_column() == before


async def test_revoking_the_last_grant_returns_to_bootstrap_mode(harness: Harness) -> None:
    await harness.run("iamtheowner", author="alice")
    assert await harness.reply("deny_user alice", author="alice") == (
        "✅ <@alice> removed from channel permissions."
    )
    # The column holds explicitly empty grants (an empty value would not overwrite it).
    assert parse_stored(await harness.permissions_column()).is_empty()
    assert await harness.reply("status", author="anyone") == "Loop bot is running."
    assert await harness.reply("iamtheowner", author="bob") == (
        "✅ <@bob> is now the owner of this channel."
    )


async def test_member_may_claim_a_channel_left_without_owner(harness: Harness) -> None:
    await harness.add_channel("c1", permissions=grants_json(members=["bob"]))
    assert await harness.reply("iamtheowner", author="eve") == NO_PERMISSION
    assert await harness.reply("iamtheowner", author="bob") == (
        "✅ <@bob> is now the owner of this channel."
    )
    assert stored(await harness.permissions_column()) == {
        "owners": {"users": ["bob"], "roles": []},
        "members": {"users": [], "roles": []},
    }


async def test_stored_grants_refuse_strangers_every_command(harness: Harness) -> None:
    await harness.add_channel("c1", permissions=grants_json(owners=["alice"], members=["bob"]))
    for command in EVERY_ROLE_COMMAND:
        assert await harness.run(command, author="eve") == [NO_PERMISSION], command
        assert NO_PERMISSION not in await harness.run(command, author="bob"), command
    assert await harness.tasks.list_tasks("c1") != []  # bob's schedule went through


async def test_grants_are_per_channel(harness: Harness) -> None:
    await harness.add_channel("c2")
    await harness.run("iamtheowner", author="alice")
    assert await harness.reply("status", author="bob") == NO_PERMISSION
    assert await harness.reply("status", author="bob", channel="c2") == "Loop bot is running."


async def test_config_grants(store: Store) -> None:
    harness = make_harness(
        store,
        {"permissions": {"owners": {"users": ["boss"]}, "members": {"users": ["dev"]}}},
    )
    await harness.add_channel("c1")
    # Config grants end bootstrap mode even with nothing stored.
    assert await harness.reply("status", author="eve") == NO_PERMISSION
    assert await harness.reply("status", author="dev") == "Loop bot is running."
    assert await harness.reply("allow_user eve", author="dev") == ONLY_OWNERS
    assert await harness.reply("iamtheowner", author="eve") == OWNER_EXISTS
    assert await harness.reply("iamtheowner", author="dev") == OWNER_EXISTS
    assert await harness.reply("allow_user eve owner", author="boss") == (
        "✅ <@eve> granted owner role."
    )
    # A stored owner grant outranks a config member grant; config owners stay owners.
    assert await harness.reply("allow_user dev owner", author="eve") == (
        "✅ <@dev> granted owner role."
    )
    assert await harness.reply("deny_user boss", author="eve") == (
        "✅ <@boss> removed from channel permissions."
    )
    assert await harness.reply("allow_user x", author="boss") == "✅ <@x> granted member role."


async def test_config_members_only_still_block_claims(store: Store) -> None:
    harness = make_harness(store, {"permissions": {"members": {"users": ["dev"]}}})
    await harness.add_channel("c1")
    assert await harness.reply("iamtheowner", author="dev") == OWNER_EXISTS
    assert await harness.permissions_column() == ""


async def test_unreadable_grants_fail_closed(harness: Harness) -> None:
    await harness.add_channel("c1", permissions="{not json")
    assert await harness.reply("status", author="anyone") == NO_PERMISSION
    assert await harness.reply("iamtheowner", author="anyone") == OWNER_EXISTS
    assert await harness.reply("allow_user anyone owner", author="anyone") == ONLY_OWNERS


async def test_unreadable_grants_can_be_repaired_by_a_config_owner(store: Store) -> None:
    harness = make_harness(store, {"permissions": {"owners": {"users": ["boss"]}}})
    await harness.add_channel("c1", permissions='{"owners": "oops"}')
    assert await harness.reply("allow_user bob", author="boss") == "✅ <@bob> granted member role."
    assert stored(await harness.permissions_column()) == {
        "owners": {"users": [], "roles": []},
        "members": {"users": ["bob"], "roles": []},
    }


async def test_roles_from_the_platform_and_role_commands(harness: Harness) -> None:
    """``allow_role``/``deny_role`` come from chat platforms, not the API parser."""
    await harness.run("iamtheowner", author="alice")
    role_cmd = Interaction("c1", "allow_role", "alice", {"target_id": "devs"})
    await harness.handler.handle_interaction(role_cmd)
    await harness.handler.handle_interaction(Interaction("c1", "status", "bob", roles=("devs",)))
    await harness.handler.handle_interaction(
        Interaction("c1", "deny_role", "alice", {"target_id": "devs"})
    )
    await harness.handler.handle_interaction(Interaction("c1", "status", "bob", roles=("devs",)))
    replies = [m.content for m in await harness.bot_messages("c1")]
    assert replies[1:] == [
        "✅ Role <@&devs> granted member role.",
        "Loop bot is running.",
        "✅ Role <@&devs> removed from channel permissions.",
        NO_PERMISSION,
    ]


async def test_threads_use_their_own_stored_grants(harness: Harness) -> None:
    await harness.run("iamtheowner", author="alice")
    # A thread copies the parent's grants when it is created (SPEC §9.2).
    await harness.add_channel("t1", permissions=await harness.permissions_column())
    assert await harness.reply("status", author="bob", channel="t1") == NO_PERMISSION
    assert await harness.reply("status", author="alice", channel="t1") == "Loop bot is running."


async def test_concurrent_grant_changes_are_not_lost(harness: Harness) -> None:
    await harness.run("iamtheowner", author="alice")
    users = [f"user{i}" for i in range(8)]
    async with trio.open_nursery() as nursery:
        for user in users:
            nursery.start_soon(
                harness.handler.handle_interaction,
                Interaction("c1", "allow_user", "alice", {"target_id": user}),
            )
    members = stored(await harness.permissions_column())["members"]["users"]
    assert sorted(members) == users


async def test_concurrent_claims_make_one_owner(harness: Harness) -> None:
    async with trio.open_nursery() as nursery:
        for user in ("alice", "bob", "carol"):
            nursery.start_soon(
                harness.handler.handle_interaction, Interaction("c1", "iamtheowner", user)
            )
    owners = stored(await harness.permissions_column())["owners"]["users"]
    assert len(owners) == 1
    replies = sorted(m.content for m in await harness.bot_messages("c1"))
    assert replies.count(OWNER_EXISTS) == 2


async def test_granting_keeps_the_channels_other_fields(harness: Harness) -> None:
    await harness.store.channels.set_session_id("c1", "session-1", harness.clock.now())
    before = await harness.store.channels.get("c1")
    await harness.run("iamtheowner", author="alice")
    after = await harness.store.channels.get("c1")
    assert before is not None and after is not None
    assert (after.name, after.platform, after.session_id, after.active, after.dir_path) == (
        before.name,
        before.platform,
        "session-1",
        before.active,
        before.dir_path,
    )
