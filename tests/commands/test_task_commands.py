"""``schedule``, ``tasks``, ``task``, ``cancel``, ``toggle``, ``edit`` against a real store.

Rules: see this package's conftest (real SQLite, fixed clock, replies read from history).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from tests.commands.conftest import NOW, Harness

pytestmark = pytest.mark.usefixtures("harness")


async def test_schedule_creates_an_enabled_task(harness: Harness) -> None:
    reply = await harness.reply("schedule type=cron schedule='0 9 * * *' prompt='check the build'")
    assert reply == "Task scheduled (ID: 1)."
    task = await harness.tasks.get_task(1)
    assert task is not None
    assert (task.channel_id, task.type, task.schedule, task.prompt, task.enabled) == (
        "c1",
        "cron",
        "0 9 * * *",
        "check the build",
        True,
    )
    assert task.next_run_at == NOW.replace(day=2, hour=9)


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("schedule type=cron schedule='61 * * * *' prompt=x", "parsing cron schedule"),
        ("schedule type=weekly schedule=x prompt=x", 'unknown task type "weekly"'),
        ("schedule prompt=x", 'unknown task type ""'),
        ("schedule type=interval schedule=0s prompt=x", "interval must be positive"),
    ],
)
async def test_schedule_failure_keeps_upstreams_text_and_logs_why(
    harness: Harness, caplog: pytest.LogCaptureFixture, command: str, reason: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="loop_server.commands"):
        assert await harness.reply(command) == "Failed to schedule task."
    assert reason in caplog.text
    assert await harness.tasks.list_tasks("c1") == []


async def test_tasks_lists_the_channels_tasks(harness: Harness) -> None:
    assert await harness.reply("tasks") == "No scheduled tasks."
    await harness.run("schedule type=interval schedule=90m prompt='poll the queue'")
    await harness.run("schedule type=once schedule=2026-03-01T18:30:00Z prompt=once")
    await harness.tasks.add_task("c1", "0 9 * * *", "cron", "x" * 90, auto_delete_sec=60)
    await harness.add_channel("other")
    await harness.tasks.add_task("other", "5m", "interval", "not this channel's")
    await harness.run("toggle 1")
    assert await harness.reply("tasks") == (
        "Scheduled tasks:\n"
        "- **ID 1** [interval] [disabled] `90m` — poll the queue (next: 1h30m0s)\n"
        "- **ID 2** [once] [enabled] 2026-03-01 18:30 UTC — once (next: 6h30m0s)\n"
        f"- **ID 3** [cron] [enabled] `0 9 * * *` — {'x' * 80}... (next: 21h0m0s)"
        " (auto_delete: 60s)\n"
    )


async def test_next_run_follows_the_clock(harness: Harness) -> None:
    await harness.run("schedule type=interval schedule=1h prompt=p")
    harness.clock.current = NOW + timedelta(minutes=57, seconds=30)
    assert await harness.reply("tasks") == (
        "Scheduled tasks:\n- **ID 1** [interval] [enabled] `1h` — p (next: 2m30s)\n"
    )


async def test_task_shows_one_task(harness: Harness) -> None:
    await harness.tasks.add_task(
        "c1", "30m", "interval", "line 1\nline 2", auto_delete_sec=120, template_name="poll"
    )
    assert await harness.reply("task 1") == (
        "**Task 1**\n"
        "Type: interval\n"
        "Schedule: `30m`\n"
        "Status: enabled\n"
        "Next run: 2026-03-01 12:30 UTC (in 30m0s)\n"
        "Template: poll\n"
        "Auto-delete: 120s\n"
        "**Prompt:**\n"
        "line 1\nline 2"
    )


@pytest.mark.parametrize("command", ["task", "cancel", "toggle", "edit"])
@pytest.mark.parametrize("task_id", ["", "abc", "1.5", "٣", "9223372036854775808", "''"])
async def test_invalid_task_ids(harness: Harness, command: str, task_id: str) -> None:
    assert await harness.reply(f"{command} {task_id} prompt=x") == "Invalid task ID."


@pytest.mark.parametrize("command", ["task", "cancel", "toggle", "edit"])
async def test_missing_and_foreign_tasks_are_not_found(harness: Harness, command: str) -> None:
    await harness.add_channel("other")
    foreign = await harness.tasks.add_task("other", "5m", "interval", "theirs")
    assert await harness.reply(f"{command} 99 prompt=x") == "Task 99 not found."
    assert await harness.reply(f"{command} -1 prompt=x") == "Task -1 not found."
    assert await harness.reply(f"{command} {foreign} prompt=x") == f"Task {foreign} not found."
    untouched = await harness.tasks.get_task(foreign)
    assert untouched is not None
    assert (untouched.enabled, untouched.prompt) == (True, "theirs")


async def test_cancel_deletes_the_task(harness: Harness) -> None:
    await harness.run("schedule type=interval schedule=5m prompt=p")
    assert await harness.reply("cancel 1") == "Task 1 cancelled."
    assert await harness.tasks.get_task(1) is None
    assert await harness.reply("cancel +1") == "Task 1 not found."


async def test_toggle_flips_enabled(harness: Harness) -> None:
    await harness.run("schedule type=interval schedule=5m prompt=p")
    assert await harness.reply("toggle 1") == "Task 1 disabled."
    task = await harness.tasks.get_task(1)
    assert task is not None and not task.enabled
    assert await harness.reply("toggle 1") == "Task 1 enabled."
    task = await harness.tasks.get_task(1)
    assert task is not None and task.enabled


async def test_edit_changes_schedule_type_and_prompt(harness: Harness) -> None:
    await harness.run("schedule type=interval schedule=5m prompt=old")
    assert await harness.reply("edit 1 prompt='new prompt'") == "Task 1 updated."
    task = await harness.tasks.get_task(1)
    assert task is not None
    assert (task.prompt, task.schedule, task.next_run_at) == (
        "new prompt",
        "5m",
        NOW + timedelta(minutes=5),
    )
    harness.clock.current = NOW + timedelta(hours=1)
    assert await harness.reply("edit 1 type=cron schedule='0 */2 * * *'") == "Task 1 updated."
    task = await harness.tasks.get_task(1)
    assert task is not None
    assert (task.type, task.schedule, task.next_run_at) == (
        "cron",
        "0 */2 * * *",
        NOW + timedelta(hours=2),
    )


async def test_edit_needs_a_field(harness: Harness) -> None:
    await harness.run("schedule type=interval schedule=5m prompt=p")
    expected = "At least one of schedule, type, or prompt is required."
    assert await harness.reply("edit 1") == expected
    assert await harness.reply("edit 1 colour=blue words") == expected
    # The field check comes before the lookup, as upstream.
    assert await harness.reply("edit 99") == expected


async def test_edit_with_an_invalid_schedule_changes_nothing(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.run("schedule type=interval schedule=5m prompt=p")
    with caplog.at_level(logging.WARNING, logger="loop_server.commands"):
        reply = await harness.reply("edit 1 schedule=soon prompt=changed")
    assert reply == "Failed to edit task."
    assert 'parsing interval "soon"' in caplog.text
    task = await harness.tasks.get_task(1)
    assert task is not None
    assert (task.schedule, task.prompt) == ("5m", "p")


async def test_edit_to_an_empty_prompt_is_refused(harness: Harness) -> None:
    """Upstream stores the empty prompt, and every later run fails; here it is refused."""
    await harness.run("schedule type=interval schedule=5m prompt=p")
    assert await harness.reply("edit 1 prompt=") == "Failed to edit task."
    task = await harness.tasks.get_task(1)
    assert task is not None and task.prompt == "p"


async def test_schedule_refuses_an_empty_prompt_or_a_past_once(harness: Harness) -> None:
    assert await harness.reply("schedule type=interval schedule=5m prompt=") == (
        "Failed to schedule task."
    )
    assert await harness.reply("schedule type=once schedule=2020-01-01T00:00:00Z prompt=p") == (
        "Failed to schedule task."
    )
    assert await harness.tasks.list_tasks("c1") == []
