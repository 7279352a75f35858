"""The seams between the API layer and its collaborators, in one place.

Names mirror upstream Loop's Go interfaces (SPEC §1.1, DESIGN §1) so that people who know Loop
find them. Any collaborator may be absent; the route that needs it then answers upstream's
501/503 text. All methods that may block are ``async``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from loop_server.domain import Channel, Message, Task, TaskRun


class ChannelEnsurer(Protocol):
    """Creates channels on the platform and records them (SPEC §9.1)."""

    async def ensure_channel(self, dir_path: str) -> str: ...

    async def create_channel(self, name: str, author_id: str) -> str: ...


class ThreadEnsurer(Protocol):
    """Creates and deletes threads (SPEC §9.2)."""

    async def create_thread(
        self, channel_id: str, name: str, author_id: str, message: str
    ) -> str: ...

    async def delete_thread(self, thread_id: str) -> None: ...


class ChannelLister(Protocol):
    """The store as the API reads it (SPEC §7.2)."""

    async def list_channels(self) -> list[Channel]: ...

    async def get_channel(self, channel_id: str) -> Channel | None: ...

    async def get_messages_cursor(
        self, channel_id: str, cursor: int, limit: int
    ) -> list[Message]: ...

    async def delete_channel(self, channel_id: str) -> None:
        """Delete the channel's child threads and their messages, then the channel."""
        ...


class MessageSender(Protocol):
    async def post_message(self, channel_id: str, content: str) -> None: ...


class IncomingMessageHandler(Protocol):
    """Takes a user's message. Returns once the message is stored (so an acknowledged message
    is never lost); whatever follows (the agent run) happens in the background."""

    async def handle_incoming_message(
        self, channel_id: str, author_id: str, content: str
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Interaction:
    """A parsed slash command (SPEC §3.13)."""

    channel_id: str
    command_name: str
    author_id: str
    options: Mapping[str, str] = field(default_factory=dict)
    guild_id: str = ""
    roles: Sequence[str] = ()


class InteractionHandler(Protocol):
    """Runs a slash command; replies are bot messages in the channel. Called in the background."""

    async def handle_interaction(self, interaction: Interaction) -> None: ...


@dataclass(frozen=True, slots=True)
class TaskEdit:
    """Fields of a task edit; ``None`` means "leave as it is" (SPEC §8.3)."""

    schedule: str | None = None
    type: str | None = None
    prompt: str | None = None
    auto_delete_sec: int | None = None

    def is_empty(self) -> bool:
        return (
            self.schedule is None
            and self.type is None
            and self.prompt is None
            and self.auto_delete_sec is None
        )


class TaskScheduler(Protocol):
    """Scheduled-task operations the API calls (SPEC §8.2–8.3, A.4)."""

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

    async def update_task(self, task_id: int, enabled: bool | None, edit: TaskEdit) -> None:
        """Validate the edit first, then apply ``enabled`` and the edit; nothing is written
        when the new schedule or type is invalid."""
        ...

    async def list_runs(self, task_id: int, cursor: int, limit: int) -> list[TaskRun]:
        """Newest first; raises ``TaskNotFound`` for an unknown task."""
        ...

    async def run_now(self, task_id: int) -> int:
        """Start a run now and return its id; raises ``TaskNotFound`` or
        ``TaskAlreadyRunning``."""
        ...


class RunningChannelLister(Protocol):
    """Channels with a running container labelled ``loop-channel`` (SPEC §5.6)."""

    async def running_channel_ids(self) -> set[str]: ...


class ActiveChatLister(Protocol):
    """Channels with a chat agent run in progress (no I/O, cannot fail)."""

    def active_chat_channel_ids(self) -> set[str]: ...


class EventBroadcaster(Protocol):
    """What the store-write path and the agent runner use to publish events (SPEC §4.4)."""

    def broadcast_message_created(self, message: Message) -> None: ...

    def broadcast_message_streaming(self, channel_id: str, content: str) -> None: ...

    def broadcast_agent_status(self, channel_id: str, status: str, error: str = "") -> None: ...

    def broadcast_tool_use(
        self, channel_id: str, tool_name: str, tool_input: str, tool_use_id: str = ""
    ) -> None: ...

    def broadcast_agent_activity(
        self, channel_id: str, activity: str, model: str = "", description: str = ""
    ) -> None: ...


class GlobalEventBroadcaster(Protocol):
    """What services use to publish the global events (channels, tasks, containers) that
    every events client receives, whatever its channel filter (docs/events.md)."""

    def broadcast_channel_created(self, parent_id: str, channel_id: str) -> None: ...

    def broadcast_channel_deleted(self, channel_id: str) -> None: ...

    def broadcast_task_event(self, event_type: str, task_id: int, channel_id: str) -> None: ...

    def broadcast_task_run_completed(
        self, task_id: int, run_id: int, status: str, channel_id: str
    ) -> None: ...

    def broadcast_container_status_changed(
        self, container_id: str, channel_id: str, kind: str, status: str, name: str
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class MemorySearchResult:
    file_path: str
    content: str
    score: float
    chunk_index: int


class MemoryIndexer(Protocol):
    async def search(
        self, dir_path: str, query: str, top_k: int
    ) -> list[MemorySearchResult] | None: ...

    async def index(self, dir_path: str) -> int: ...


class ContainerFinder(Protocol):
    async def find_container_by_channel(self, channel_id: str, dir_path: str) -> str: ...


class ContainerStopper(Protocol):
    async def container_remove(self, container_id: str) -> None: ...


class InteractiveCmdBuilder(Protocol):
    def build_interactive_cmd(
        self, channel_id: str, dir_path: str, session_id: str, fork_session: bool
    ) -> str: ...


class TerminalViewer(Protocol):
    """One attached client of a terminal session: its output and the end of it."""

    async def receive_output(self) -> bytes:
        """Every output chunk queued since the last call, joined into one (a viewer that fell
        behind has lost its oldest chunks); waits while none is queued. Raises
        ``trio.EndOfChannel`` once the viewer is detached, or its session has ended or was
        stopped, and nothing is left to read."""
        ...


class TerminalManager(Protocol):
    """Docker exec sessions with a TTY (SPEC §6). Sessions outlive their viewers. Failures
    raise an exception whose text is what the client is told (``session not found``,
    ``client not found``, ``writing input: ...``, ``resizing exec: ...``)."""

    async def create_session(
        self, container_id: str, cmd: Sequence[str]
    ) -> tuple[str, TerminalViewer, bytes]:
        """Start ``cmd`` (empty: ``/bin/sh``) on a TTY in the container. Returns the session
        id (8 hex characters), the creator's viewer, and the history (normally empty)."""
        ...

    async def attach_session(self, session_id: str) -> tuple[TerminalViewer, bytes]:
        """A new viewer and the recent output it starts from: the history, then through the
        viewer every later byte, with no gap and no duplicate."""
        ...

    async def detach(self, session_id: str, viewer: TerminalViewer) -> None:
        """Remove the viewer (its stream ends); the session keeps running."""
        ...

    async def send_input(self, session_id: str, data: bytes) -> None: ...

    async def resize(self, session_id: str, rows: int, cols: int) -> None: ...

    async def stop_session(self, session_id: str) -> str:
        """Kill the session's process and end every viewer's stream; returns the container
        id."""
        ...


__all__ = [
    "ActiveChatLister",
    "ChannelCreator",
    "ChannelEnsurer",
    "ChannelLister",
    "ContainerFinder",
    "ContainerStopper",
    "EventBroadcaster",
    "IncomingMessageHandler",
    "Interaction",
    "InteractionHandler",
    "InteractiveCmdBuilder",
    "MemoryIndexer",
    "MemorySearchResult",
    "MessageSender",
    "RunningChannelLister",
    "TaskEdit",
    "TaskScheduler",
    "TerminalManager",
    "TerminalViewer",
    "ThreadCreator",
]


class ChannelCreator(Protocol):
    """The chat platform's side of channel creation (SPEC §9.1)."""

    async def create_channel(self, guild_id: str, name: str) -> str: ...

    async def invite_user(self, channel_id: str, user_id: str) -> None: ...

    async def get_owner_user_id(self) -> str: ...

    async def set_channel_topic(self, channel_id: str, topic: str) -> None: ...


class ThreadCreator(Protocol):
    """The chat platform's side of threads (SPEC §9.2). An empty id from ``create_thread``
    means the platform keeps no thread of its own and the id is generated locally."""

    async def create_thread(
        self, channel_id: str, name: str, mention_user_id: str, message: str
    ) -> str: ...

    async def delete_thread(self, thread_id: str) -> None: ...
