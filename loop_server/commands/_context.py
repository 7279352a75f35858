"""What a command needs: its collaborators (narrow protocols) and the interaction at hand."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from loop_server.clock import Clock
from loop_server.commands._config import TaskTemplate
from loop_server.commands._permissions import Permissions
from loop_server.domain import Channel, Task
from loop_server.protocols import Interaction, MessageSender, TaskEdit


class TaskOperations(Protocol):
    """The subset of ``TaskScheduler`` the commands use (``TaskService`` satisfies it)."""

    async def add_task(
        self,
        channel_id: str,
        schedule: str,
        task_type: str,
        prompt: str,
        *,
        auto_delete_sec: int = 0,
        template_name: str = "",
    ) -> int: ...

    async def list_tasks(self, channel_id: str) -> list[Task]: ...

    async def get_task(self, task_id: int) -> Task | None: ...

    async def remove_task(self, task_id: int) -> None: ...

    async def update_task(self, task_id: int, enabled: bool | None, edit: TaskEdit) -> None: ...


class ChannelGrants(Protocol):
    """Reads channels and writes their stored grants (``services.channels.StoreChannelGrants``)."""

    async def get_channel(self, channel_id: str) -> Channel | None: ...

    async def set_permissions(self, channel_id: str, permissions: str) -> None:
        """Store ``permissions`` (JSON, never ``''``) as the channel's grants."""
        ...


@dataclass(frozen=True, slots=True)
class Services:
    tasks: TaskOperations
    replies: MessageSender
    stop_run: Callable[[str], bool]  # cancel the channel's run; False when none runs
    readme: str
    templates: Sequence[TaskTemplate]
    permissions: Permissions  # from the config file
    channels: ChannelGrants
    clock: Clock


@dataclass(frozen=True, slots=True)
class CommandContext:
    interaction: Interaction
    channel: Channel
    stored: Permissions  # the channel's own grants, as read before the command ran
    services: Services

    @property
    def channel_id(self) -> str:
        return self.interaction.channel_id

    def option(self, key: str) -> str:
        return self.interaction.options.get(key, "")
