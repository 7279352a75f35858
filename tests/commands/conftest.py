"""Fixtures for the slash-command tests. The rules every test here follows:

* The handler runs against real parts: a real SQLite file in ``tmp_path``, the real
  ``TaskService``, ``MessageService`` and ``StoreChannelGrants``; only the run stopper (the
  orchestrator's ``stop``) is a recording stand-in, since runs are the agent tests' business.
* The wall clock is a ``FixedClock``, so next-run durations in replies are exact.
* Replies are read back from the channel's stored history, as a client would see them.
* The API tests use the real server over HTTP and wait for replies on ``/api/ws`` with
  ``trio.fail_after`` deadlines — never by sleeping.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from loop_server.commands import (
    CommandHandler,
    CommandsConfig,
    TaskOperations,
    parse_command,
)
from loop_server.domain import ChannelUpsert, Message
from loop_server.services.channels import StoreChannelGrants
from loop_server.services.messages import MessageService
from loop_server.services.tasks import TaskService
from loop_server.store import Store
from tests.conftest import FixedClock

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
README = "# loop-server\n\nThe README text.\n"
TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "daily-summary",
        "description": "Summary of the day",
        "schedule": "0 17 * * *",
        "type": "cron",
        "prompt": "Summarise today's tickets.",
    },
    {
        "name": "poll",
        "description": "Poll the queue",
        "schedule": "5m",
        "type": "interval",
        "prompt": "Poll.",
        "auto_delete_sec": 600,
    },
]


@dataclass
class StopRecorder:
    """Stands in for ``Orchestrator.stop``: channels in ``running`` have a run to stop."""

    running: set[str] = field(default_factory=set)
    stopped: list[str] = field(default_factory=list)

    def __call__(self, channel_id: str) -> bool:
        if channel_id not in self.running:
            return False
        self.running.discard(channel_id)
        self.stopped.append(channel_id)
        return True


@dataclass
class Harness:
    store: Store
    handler: CommandHandler
    tasks: TaskService
    clock: FixedClock
    stops: StopRecorder

    async def add_channel(self, channel_id: str, *, permissions: str = "") -> None:
        await self.store.channels.upsert(
            ChannelUpsert(
                channel_id=channel_id,
                name=channel_id,
                platform="local",
                permissions=permissions,
            ),
            self.clock.now(),
        )

    async def bot_messages(self, channel_id: str) -> list[Message]:
        return [m for m in await self.store.messages.recent(channel_id, 200) if m.is_bot]

    async def run(self, text: str, *, channel: str = "c1", author: str = "local-user") -> list[str]:
        """Run one command line to the end; return the replies it posted."""
        before = len(await self.bot_messages(channel))
        await self.handler.handle_interaction(parse_command(channel, author, text))
        return [m.content for m in (await self.bot_messages(channel))[before:]]

    async def reply(self, text: str, *, channel: str = "c1", author: str = "local-user") -> str:
        replies = await self.run(text, channel=channel, author=author)
        assert len(replies) == 1, replies
        return replies[0]

    async def permissions_column(self, channel_id: str = "c1") -> str:
        channel = await self.store.channels.get(channel_id)
        assert channel is not None
        return channel.permissions


def build_handler(
    store: Store,
    clock: FixedClock,
    stops: StopRecorder,
    *,
    extra: dict[str, Any] | None = None,
    messages: MessageService | None = None,
    tasks: TaskOperations | None = None,
) -> CommandHandler:
    config = CommandsConfig.from_extra(extra or {}, now=clock.now())
    return CommandHandler(
        tasks=tasks or TaskService(store, clock=clock),
        replies=messages or MessageService(store.messages, None, clock=clock),
        stop_run=stops,
        readme=README,
        channels=StoreChannelGrants(store.channels, clock=clock),
        clock=clock,
        templates=config.templates,
        permissions=config.permissions,
    )


@pytest.fixture(autouse=True)
def local_zone() -> Iterator[Callable[[str], None]]:
    """Replies show times in the server's local zone (SPEC A.6): every test here runs in UTC
    unless it calls ``local_zone(TZ)`` (a POSIX ``TZ`` value); the zone is restored after."""
    saved = os.environ.get("TZ")

    def use(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    use("UTC")
    try:
        yield use
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "loop.db")
    try:
        yield opened
    finally:
        await opened.close()


def make_harness(store: Store, extra: dict[str, Any] | None = None) -> Harness:
    clock = FixedClock(NOW)
    stops = StopRecorder()
    tasks = TaskService(store, clock=clock)
    handler = build_handler(store, clock, stops, extra=extra, tasks=tasks)
    return Harness(store, handler, tasks, clock, stops)


@pytest.fixture
async def harness(store: Store) -> Harness:
    """A handler with upstream's example templates and no configured grants (bootstrap)."""
    made = make_harness(store, {"task_templates": TEMPLATES})
    await made.add_channel("c1")
    return made


def grants_json(owners: Sequence[str] = (), members: Sequence[str] = ()) -> str:
    return json.dumps(
        {"owners": {"users": list(owners)}, "members": {"users": list(members)}},
    )
