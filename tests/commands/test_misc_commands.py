"""``status``, ``stop``, ``readme``, ``template-list``, ``template-add``, and how the handler
answers: as a bot message in the command's channel.

Rules: see this package's conftest (real SQLite, fixed clock, replies read from history).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from loop_server.commands import COMMAND_NAMES, HANDLED_COMMANDS
from loop_server.domain import Task
from loop_server.platform.local import BOT_NAME, BOT_USER_ID
from loop_server.protocols import Interaction
from loop_server.store import Store
from tests.commands.conftest import README, Harness, build_handler, grants_json, make_harness


async def test_replies_are_bot_messages_in_the_channel(harness: Harness) -> None:
    assert await harness.reply("status") == "Loop bot is running."
    [message] = await harness.bot_messages("c1")
    assert (message.author_id, message.author_name, message.is_bot) == (
        BOT_USER_ID,
        BOT_NAME,
        True,
    )


async def test_readme(harness: Harness) -> None:
    assert await harness.reply("readme") == README


async def test_stop_cancels_the_channels_run(harness: Harness) -> None:
    harness.stops.running = {"c1", "c2"}
    # The run posts its own "Run stopped."; the command adds nothing.
    assert await harness.run("stop") == []
    assert harness.stops.stopped == ["c1"]
    assert await harness.reply("stop") == "No active run to stop."


async def test_stop_another_channel_answers_here(harness: Harness) -> None:
    await harness.add_channel("c2")
    harness.stops.running = {"c2"}
    assert await harness.run("stop c2") == []
    assert harness.stops.stopped == ["c2"]
    assert await harness.reply("stop c2") == "No active run to stop."
    assert await harness.bot_messages("c2") == []


async def test_stop_another_channel_needs_a_role_there(harness: Harness) -> None:
    await harness.add_channel("private", permissions=grants_json(owners=["alice"]))
    harness.stops.running = {"private"}
    expected = "⛔ You don't have permission to use this command."
    assert await harness.reply("stop private", author="bob") == expected
    assert harness.stops.stopped == []
    assert await harness.run("stop private", author="alice") == []
    assert harness.stops.stopped == ["private"]
    assert await harness.reply("stop nowhere", author="bob") == "No active run to stop."


def test_every_parsed_command_is_handled() -> None:
    assert COMMAND_NAMES <= HANDLED_COMMANDS
    platform_only = HANDLED_COMMANDS - COMMAND_NAMES
    assert platform_only == {"allow_role", "deny_role"}


async def test_template_list(harness: Harness, store: Store) -> None:
    assert await harness.reply("template-list") == (
        "Available templates:\n"
        "- **daily-summary** [cron] `0 17 * * *` — Summary of the day\n"
        "- **poll** [interval] `5m` — Poll the queue\n"
    )
    bare = make_harness(store)
    assert await bare.reply("template-list") == "No templates configured."


async def test_template_add_loads_once_per_channel(harness: Harness) -> None:
    assert await harness.reply("template-add poll") == "Template 'poll' loaded (task ID: 1)."
    task = await harness.tasks.get_task(1)
    assert task is not None
    assert (task.channel_id, task.type, task.schedule, task.prompt) == (
        "c1",
        "interval",
        "5m",
        "Poll.",
    )
    assert (task.template_name, task.auto_delete_sec, task.enabled) == ("poll", 600, True)
    assert (
        await harness.reply("template-add poll") == "Template 'poll' already loaded (task ID: 1)."
    )
    await harness.add_channel("c2")
    assert await harness.reply("template-add poll", channel="c2") == (
        "Template 'poll' loaded (task ID: 2)."
    )


async def test_template_add_unknown(harness: Harness) -> None:
    assert await harness.reply("template-add nope") == "Unknown template: nope"
    assert await harness.reply("template-add") == "Unknown template: "
    assert await harness.tasks.list_tasks("c1") == []


async def test_concurrent_template_adds_create_one_task(harness: Harness) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(
                harness.handler.handle_interaction,
                Interaction("c1", "template-add", "local-user", {"name": "daily-summary"}),
            )
    replies = sorted(m.content for m in await harness.bot_messages("c1"))
    assert replies == ["Template 'daily-summary' already loaded (task ID: 1)."] * 4 + [
        "Template 'daily-summary' loaded (task ID: 1)."
    ]
    assert len(await harness.tasks.list_tasks("c1")) == 1


async def test_unknown_channel_gets_no_reply_and_no_side_effect(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="loop_server.commands"):
        assert (
            await harness.run("schedule type=interval schedule=5m prompt=p", channel="ghost") == []
        )
    assert "for unknown channel ghost ignored" in caplog.text
    assert await harness.tasks.list_tasks("ghost") == []
    assert await harness.store.channels.get("ghost") is None


async def test_unknown_command_names_are_logged_and_ignored(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="loop_server.commands"):
        await harness.handler.handle_interaction(Interaction("c1", "shortcuts", "local-user"))
    assert "unknown command 'shortcuts'" in caplog.text
    assert await harness.bot_messages("c1") == []


async def test_reply_to_a_channel_deleted_meanwhile_is_dropped(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    class ChannelDeletingTasks:
        """Deletes the channel while ``tasks`` runs, after the handler looked it up."""

        async def list_tasks(self, channel_id: str) -> list[Task]:
            await harness.store.channels.delete(channel_id)
            return await harness.tasks.list_tasks(channel_id)

        def __getattr__(self, name: str) -> Any:
            return getattr(harness.tasks, name)

    handler = build_handler(
        harness.store, harness.clock, harness.stops, tasks=ChannelDeletingTasks()
    )
    with caplog.at_level(logging.WARNING, logger="loop_server.commands"):
        await handler.handle_interaction(Interaction("c1", "tasks", "local-user"))
    assert "channel c1 was deleted before the command's reply" in caplog.text
