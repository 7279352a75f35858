"""The ``InteractionHandler``: permission check, dispatch, and the reply as a bot message.

Order (upstream's): look up the channel and its stored grants, resolve the author's role from
the config's and the channel's grants, refuse (``allow_*``/``deny_*`` need an owner, every
other command a role, ``iamtheowner`` decides for itself), run the command, post its reply in
the command's channel. Commands that write grants or create template tasks run one at a time
(a lock), each re-reading what it changes, so concurrent commands cannot lose an update.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import trio

from loop_server.clock import Clock
from loop_server.commands import _misc_commands as misc
from loop_server.commands import _permission_commands as perms
from loop_server.commands import _task_commands as tasks
from loop_server.commands._config import TaskTemplate
from loop_server.commands._context import (
    ChannelGrants,
    CommandContext,
    Services,
    TaskOperations,
)
from loop_server.commands._permissions import OWNER, Permissions, parse_stored, resolve_role
from loop_server.protocols import Interaction, MessageSender
from loop_server.services.errors import NotFound

log = logging.getLogger(__name__)

Access = Literal["role", "owner", "claim"]


@dataclass(frozen=True, slots=True)
class _Command:
    run: Callable[[CommandContext], Awaitable[str | None]]
    access: Access = "role"  # role: any role; owner: owners only; claim: checked by the command
    writes: bool = False  # serialised under the handler's write lock


_COMMANDS: dict[str, _Command] = {
    "schedule": _Command(tasks.schedule),
    "tasks": _Command(tasks.tasks),
    "task": _Command(tasks.task),
    "cancel": _Command(tasks.cancel),
    "toggle": _Command(tasks.toggle),
    "edit": _Command(tasks.edit),
    "status": _Command(misc.status),
    "stop": _Command(misc.stop),
    "readme": _Command(misc.readme),
    "template-list": _Command(misc.templates),
    "template-add": _Command(misc.template_add, writes=True),
    "allow_user": _Command(perms.allow_user, access="owner", writes=True),
    "deny_user": _Command(perms.deny_user, access="owner", writes=True),
    # Upstream's orchestrator knows these; the API's parser does not produce them (SPEC §3.13).
    "allow_role": _Command(perms.allow_role, access="owner", writes=True),
    "deny_role": _Command(perms.deny_role, access="owner", writes=True),
    "iamtheowner": _Command(perms.iamtheowner, access="claim", writes=True),
}

#: Every command the handler runs (a superset of what ``POST /api/commands`` parses).
HANDLED_COMMANDS: frozenset[str] = frozenset(_COMMANDS)


class CommandHandler:
    """Satisfies ``InteractionHandler``. Every collaborator is given, so wiring is one call."""

    def __init__(
        self,
        *,
        tasks: TaskOperations,
        replies: MessageSender,
        stop_run: Callable[[str], bool],
        readme: str,
        channels: ChannelGrants,
        clock: Clock,
        templates: Sequence[TaskTemplate] = (),
        permissions: Permissions | None = None,
    ) -> None:
        self._services = Services(
            tasks=tasks,
            replies=replies,
            stop_run=stop_run,
            readme=readme,
            templates=tuple(templates),
            permissions=permissions or Permissions(),
            channels=channels,
            clock=clock,
        )
        self._write_lock = trio.Lock()

    async def handle_interaction(self, interaction: Interaction) -> None:
        command = _COMMANDS.get(interaction.command_name)
        if command is None:
            log.warning(
                "unknown command %r in %s", interaction.command_name, interaction.channel_id
            )
            return
        if command.writes:
            async with self._write_lock:
                reply = await self._run(command, interaction)
        else:
            reply = await self._run(command, interaction)
        if reply is not None:
            await self._reply(interaction.channel_id, reply)

    async def _run(self, command: _Command, interaction: Interaction) -> str | None:
        channel = await self._services.channels.get_channel(interaction.channel_id)
        if channel is None:
            # A bot message needs a stored channel, so there is nobody to answer; running the
            # command anyway would, e.g., schedule tasks for a channel that does not exist.
            log.warning(
                "command %r for unknown channel %s ignored",
                interaction.command_name,
                interaction.channel_id,
            )
            return None
        stored = parse_stored(channel.permissions)
        if stored.unreadable:
            log.error(
                "unreadable permissions in channel %s: only config grants apply",
                channel.channel_id,
            )
        role = resolve_role(
            self._services.permissions, stored, interaction.author_id, interaction.roles
        )
        if command.access == "owner" and role != OWNER:
            return perms.ONLY_OWNERS
        if command.access == "role" and role is None:
            return perms.NO_PERMISSION
        return await command.run(CommandContext(interaction, channel, stored, self._services))

    async def _reply(self, channel_id: str, text: str) -> None:
        try:
            await self._services.replies.post_message(channel_id, text)
        except NotFound:
            log.warning("channel %s was deleted before the command's reply", channel_id)
