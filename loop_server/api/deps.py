"""What the API layer is given: its collaborators, each optional as upstream's setters were."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from loop_server.console_assets import ConsoleAssets
from loop_server.protocols import (
    ActiveChatLister,
    ChannelEnsurer,
    ChannelLister,
    IncomingMessageHandler,
    InteractionHandler,
    MemoryIndexer,
    MessageSender,
    RunningChannelLister,
    TaskScheduler,
    ThreadEnsurer,
)


class BranchReader(Protocol):
    async def current_branches(self, dir_paths: Sequence[str]) -> list[str]:
        """The checked-out git branch of each dir, in order ("" where there is none)."""
        ...


class BackgroundSpawner(Protocol):
    """Starts work that outlives the request (upstream's "background context")."""

    async def spawn(self, fn: Callable[[], Awaitable[None]], name: str) -> None:
        """Start ``fn``; may wait for room first (bounded), returns once it has started."""
        ...


@dataclass
class ApiDeps:
    scheduler: TaskScheduler
    background: BackgroundSpawner
    readme: str
    channels: ChannelEnsurer | None = None
    threads: ThreadEnsurer | None = None
    store: ChannelLister | None = None
    messages: MessageSender | None = None
    memory: MemoryIndexer | None = None
    loop_dir: str = ""
    platform: str = ""
    running_channels: RunningChannelLister | None = None
    active_chats: ActiveChatLister | None = None
    incoming: IncomingMessageHandler | None = None
    interactions: InteractionHandler | None = None
    branches: BranchReader | None = None
    health: Callable[[], Mapping[str, Any]] = field(default=lambda: {})
    max_body_bytes: int = 1024 * 1024
    console: ConsoleAssets | None = None  # the web console's files; None: no console routes
