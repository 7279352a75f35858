"""``schedule``, ``tasks``, ``task``, ``cancel``, ``toggle``, ``edit`` (SPEC A.6, §8.2–8.3).

Each returns its reply text. Failures keep upstream's short texts ("Failed to ... task.") and
log the reason: a bad schedule is the user's mistake (warning), anything else is ours (error).

A task id names a task of *this* channel: ``task``/``cancel``/``toggle``/``edit`` of another
channel's task answer ``Task N not found.``, as a missing task does. Upstream does not check,
which would let someone allowed in one channel change any channel's tasks by guessing ids.
"""

from __future__ import annotations

import logging

from loop_server.commands._context import CommandContext
from loop_server.commands._format import task_detail, task_list
from loop_server.domain import Task
from loop_server.protocols import TaskEdit
from loop_server.schedule_math import ScheduleError

log = logging.getLogger(__name__)

INVALID_TASK_ID = "Invalid task ID."
_INT64 = range(-(2**63), 2**63)


def parse_task_id(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 10, 64)``: an optional sign, ASCII digits, in range."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    value = int(text)
    return value if value in _INT64 else None


def _failed(what: str, ctx: CommandContext, err: Exception) -> None:
    if isinstance(err, ScheduleError):
        log.warning("%s in channel %s: %s", what, ctx.channel_id, err)
    else:
        log.error("%s in channel %s failed", what, ctx.channel_id, exc_info=err)


async def _own_task(ctx: CommandContext, task_id: int) -> Task | None:
    task = await ctx.services.tasks.get_task(task_id)
    return task if task is not None and task.channel_id == ctx.channel_id else None


async def schedule(ctx: CommandContext) -> str:
    try:
        task_id = await ctx.services.tasks.add_task(
            ctx.channel_id, ctx.option("schedule"), ctx.option("type"), ctx.option("prompt")
        )
    except Exception as err:
        _failed("scheduling a task", ctx, err)
        return "Failed to schedule task."
    return f"Task scheduled (ID: {task_id})."


async def tasks(ctx: CommandContext) -> str:
    try:
        found = await ctx.services.tasks.list_tasks(ctx.channel_id)
    except Exception as err:
        _failed("listing tasks", ctx, err)
        return "Failed to list tasks."
    return task_list(found, ctx.services.clock.now())


async def task(ctx: CommandContext) -> str:
    task_id = parse_task_id(ctx.option("task_id"))
    if task_id is None:
        return INVALID_TASK_ID
    try:
        found = await _own_task(ctx, task_id)
    except Exception as err:
        _failed(f"reading task {task_id}", ctx, err)
        return "Failed to get task."
    if found is None:
        return f"Task {task_id} not found."
    return task_detail(found, ctx.services.clock.now())


async def cancel(ctx: CommandContext) -> str:
    task_id = parse_task_id(ctx.option("task_id"))
    if task_id is None:
        return INVALID_TASK_ID
    try:
        if await _own_task(ctx, task_id) is None:
            return f"Task {task_id} not found."
        await ctx.services.tasks.remove_task(task_id)
    except Exception as err:
        _failed(f"cancelling task {task_id}", ctx, err)
        return "Failed to cancel task."
    return f"Task {task_id} cancelled."


async def toggle(ctx: CommandContext) -> str:
    task_id = parse_task_id(ctx.option("task_id"))
    if task_id is None:
        return INVALID_TASK_ID
    try:
        found = await _own_task(ctx, task_id)
        if found is None:
            return f"Task {task_id} not found."
        enabled = not found.enabled
        await ctx.services.tasks.update_task(task_id, enabled, TaskEdit())
    except Exception as err:
        _failed(f"toggling task {task_id}", ctx, err)
        return "Failed to toggle task."
    return f"Task {task_id} {'enabled' if enabled else 'disabled'}."


async def edit(ctx: CommandContext) -> str:
    task_id = parse_task_id(ctx.option("task_id"))
    if task_id is None:
        return INVALID_TASK_ID
    options = ctx.interaction.options
    # A key given with an empty value (`prompt=`) is an edit to "", as upstream.
    change = TaskEdit(
        schedule=options.get("schedule"), type=options.get("type"), prompt=options.get("prompt")
    )
    if change.is_empty():
        return "At least one of schedule, type, or prompt is required."
    try:
        if await _own_task(ctx, task_id) is None:
            return f"Task {task_id} not found."
        await ctx.services.tasks.update_task(task_id, None, change)
    except Exception as err:
        _failed(f"editing task {task_id}", ctx, err)
        return "Failed to edit task."
    return f"Task {task_id} updated."
