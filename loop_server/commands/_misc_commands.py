"""``status``, ``stop``, ``readme``, ``template-list`` and ``template-add`` (SPEC A.6)."""

from __future__ import annotations

import logging

from loop_server.commands._context import CommandContext
from loop_server.commands._format import template_list
from loop_server.commands._permission_commands import NO_PERMISSION
from loop_server.commands._permissions import parse_stored, resolve_role

log = logging.getLogger(__name__)


async def status(ctx: CommandContext) -> str:
    return "Loop bot is running."


async def stop(ctx: CommandContext) -> str | None:
    target = ctx.option("channel_id") or ctx.channel_id
    if target != ctx.channel_id and not await _may_act_in(ctx, target):
        # Upstream checks only the command's channel, so a member of one channel could stop
        # runs anywhere; the author needs a role in the run's channel too.
        return NO_PERMISSION
    if not ctx.services.stop_run(target):
        return "No active run to stop."
    # The run itself posts "Run stopped." in its channel once it has wound down.
    log.info("run in %s stopped by %s", target, ctx.interaction.author_id)
    return None


async def _may_act_in(ctx: CommandContext, channel_id: str) -> bool:
    channel = await ctx.services.channels.get_channel(channel_id)
    if channel is None:
        return True  # no such channel, so no run to stop: "No active run to stop."
    role = resolve_role(
        ctx.services.permissions,
        parse_stored(channel.permissions),
        ctx.interaction.author_id,
        ctx.interaction.roles,
    )
    return role is not None


async def readme(ctx: CommandContext) -> str:
    return ctx.services.readme


async def templates(ctx: CommandContext) -> str:
    return template_list(ctx.services.templates)


async def template_add(ctx: CommandContext) -> str:
    """Create the named template's task in this channel, once: a task of the channel that
    already carries the template's name is reported instead of duplicated. (The handler runs
    this under its write lock, so two concurrent adds cannot both miss the existing task.)"""
    name = ctx.option("name")
    template = next((t for t in ctx.services.templates if t.name == name), None)
    if template is None:
        return f"Unknown template: {name}"
    tasks = ctx.services.tasks
    try:
        existing = [t for t in await tasks.list_tasks(ctx.channel_id) if t.template_name == name]
    except Exception as err:
        log.error("checking templates in %s failed", ctx.channel_id, exc_info=err)
        return "Failed to check existing templates."
    if existing:
        return f"Template '{name}' already loaded (task ID: {existing[0].id})."
    try:
        task_id = await tasks.add_task(
            ctx.channel_id,
            template.schedule,
            template.type,
            template.prompt,
            auto_delete_sec=template.auto_delete_sec,
            template_name=name,
        )
    except Exception as err:
        # Template schedules were validated at start-up, so this is the store failing.
        log.error("adding template %r in %s failed", name, ctx.channel_id, exc_info=err)
        return "Failed to add template task."
    return f"Template '{name}' loaded (task ID: {task_id})."
