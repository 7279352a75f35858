"""``allow_user``, ``deny_user``, ``iamtheowner`` (and the orchestrator-only ``allow_role`` /
``deny_role``): changes to a channel's stored grants (SPEC A.6).

The handler runs these under its write lock and passes the grants it read under that lock, so
two concurrent changes cannot overwrite each other.
"""

from __future__ import annotations

import logging

from loop_server.commands._context import CommandContext
from loop_server.commands._permissions import MEMBER, OWNER, ROLES, Permissions

log = logging.getLogger(__name__)

NO_PERMISSION = "⛔ You don't have permission to use this command."
ONLY_OWNERS = "⛔ Only owners can manage permissions."
OWNER_EXISTS = "⛔ An owner is already configured. Use `/loop allow_user` to manage permissions."


def _mention(kind: str, target: str) -> str:
    return f"Role <@&{target}>" if kind == "roles" else f"<@{target}>"


async def _save(ctx: CommandContext, grants: Permissions) -> bool:
    try:
        await ctx.services.channels.set_permissions(ctx.channel_id, grants.to_json())
    except Exception as err:
        log.error("updating permissions of %s failed", ctx.channel_id, exc_info=err)
        return False
    return True


async def _allow(ctx: CommandContext, kind: str) -> str:
    target = ctx.option("target_id")
    command = ctx.interaction.command_name
    if not target:
        return f"Usage: `{command} ID [owner|member]`"
    role = (ctx.option("role") or MEMBER).lower()
    # Upstream stores any other word as member yet replies "granted <word> role"; say no.
    if role not in ROLES:
        return f"⛔ Unknown role: {ctx.option('role')} (use owner or member)."
    granted = ctx.stored.granting(kind, target, OWNER if role == OWNER else MEMBER)
    if not await _save(ctx, granted):
        return "Failed to update permissions."
    return f"✅ {_mention(kind, target)} granted {role} role."


async def _deny(ctx: CommandContext, kind: str) -> str:
    target = ctx.option("target_id")
    if not target:
        return f"Usage: `{ctx.interaction.command_name} ID`"
    if not await _save(ctx, ctx.stored.revoking(kind, target)):
        return "Failed to update permissions."
    return f"✅ {_mention(kind, target)} removed from channel permissions."


async def allow_user(ctx: CommandContext) -> str:
    return await _allow(ctx, "users")


async def allow_role(ctx: CommandContext) -> str:
    return await _allow(ctx, "roles")


async def deny_user(ctx: CommandContext) -> str:
    return await _deny(ctx, "users")


async def deny_role(ctx: CommandContext) -> str:
    return await _deny(ctx, "roles")


async def iamtheowner(ctx: CommandContext) -> str:
    """Claim ownership of a channel nobody owns.

    In bootstrap mode (no grants anywhere) anyone may claim, as upstream. We also let a
    *member* of the channel claim it when its stored grants name no owner (e.g. after the last
    owner removed themselves), which upstream leaves stuck; someone with no role still may not.
    Grants in the config file mean the server's operator decides: no claim then."""
    configured, stored = ctx.services.permissions, ctx.stored
    if not configured.is_empty() or stored.has_owner():
        return OWNER_EXISTS
    author = ctx.interaction.author_id
    if not stored.is_empty() and stored.role_of(author, ctx.interaction.roles) is None:
        return NO_PERMISSION
    if not await _save(ctx, stored.granting("users", author, OWNER)):
        return "Failed to update permissions."
    return f"✅ <@{author}> is now the owner of this channel."
