"""Shared fixtures. The rules every test here follows:

* Real parts: the real server (hypercorn on 127.0.0.1, port 0), real HTTP clients (httpx),
  real SQLite files under ``tmp_path``. Nothing talks to any address but loopback.
* Every I/O wait has an absolute deadline (``trio.fail_after``); no test sleeps to wait for a
  result — it waits on the event itself.
* Tests that need Docker skip loudly without an engine, and fail instead when
  ``LOOP_REQUIRE_DOCKER=1`` (CI sets it).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection

from loop_server.clock import Clock
from loop_server.config import Config
from loop_server.domain import ChannelUpsert
from loop_server.runtime import ServerHandle, run_server
from loop_server.scheduler import TaskExecutor
from tests.events.events_helpers import connect_ws

# The Docker fixtures, registered once for every test module.
pytest_plugins = ["tests.docker.fixtures", "tests.services.fixtures"]
#: Asking for one of these (directly or through another fixture) makes a test a Docker test.
DOCKER_FIXTURES = frozenset({"docker_client", "loop_test_image", "docker_containers"})
#: Likewise for the real PostgreSQL and Redis servers of the scale-out tests.
POSTGRES_FIXTURES = frozenset({"postgres_server", "postgres_url"})
REDIS_FIXTURES = frozenset({"redis_server", "redis_url"})

TEST_IMAGE = os.environ.get("LOOP_TEST_IMAGE", "loop-test:latest")
STUB_CLAUDE = "/usr/local/bin/claude"


def make_config(tmp_path: Path, **overrides: object) -> Config:
    """A server on a free loopback port whose agent runs use the test image's claude stub, with
    no network. Without a Docker engine every run ends in a clear error bot message."""
    base = Config(
        addr="127.0.0.1:0",
        data_dir=tmp_path / "data",
        container_image=TEST_IMAGE,
        claude_bin=STUB_CLAUDE,
        container_network="none",
        container_timeout=60,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


class FixedClock:
    """A wall clock that only moves when a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


@pytest.fixture
def clock() -> Clock | None:
    """The server's wall clock; ``None`` is the system clock. Modules override this."""
    return None


@pytest.fixture
def executor() -> TaskExecutor | None:
    """What scheduled tasks run through; ``None``: no scheduler. Modules override this."""
    return None


@pytest.fixture
async def server(
    nursery: trio.Nursery, config: Config, clock: Clock | None, executor: TaskExecutor | None
) -> AsyncIterator[ServerHandle]:
    with trio.fail_after(10):
        handle: ServerHandle = await nursery.start(
            partial(run_server, config, clock=clock, executor=executor)
        )
    yield handle
    handle.shutdown()


@pytest.fixture
async def client(server: ServerHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        yield http


def user_messages(history: dict[str, Any]) -> list[dict[str, Any]]:
    """The users' messages of a history page (agent replies interleave with them)."""
    return [m for m in history["messages"] if not m["is_bot"]]


async def agents_idle(server: ServerHandle) -> None:
    """Wait until every queued or running agent run has ended."""
    with trio.fail_after(60):
        await server.services.orchestrator.wait_idle()


@pytest.fixture
async def events(server: ServerHandle) -> AsyncIterator[WebSocketConnection]:
    """A client of the server's /api/ws, subscribed to every channel."""
    async with connect_ws(server.port, "/api/ws") as ws:
        yield ws


async def next_event(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(60):
        return dict(json.loads(await ws.get_message()))


async def events_until(
    ws: WebSocketConnection, channel_id: str, status: str
) -> list[dict[str, Any]]:
    """The channel's events up to and including its next ``agent.status`` of ``status``."""
    seen: list[dict[str, Any]] = []
    while True:
        event = await next_event(ws)
        if event["channel_id"] != channel_id:
            continue
        seen.append(event)
        if event["type"] == "agent.status" and event["data"]["status"] == status:
            return seen


async def create_channel(client: httpx.AsyncClient, name: str) -> str:
    response = await client.post("/api/channels/create", json={"name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["channel_id"])


async def add_channels(server: ServerHandle, *channel_ids: str) -> None:
    """Store channels with these ids on the local platform (a message or a task needs an
    existing channel; ids chosen by the test keep its assertions readable)."""
    for channel_id in channel_ids:
        await server.store.channels.upsert(
            ChannelUpsert(channel_id=channel_id, name=channel_id, platform="local"),
            datetime.now(UTC),
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs Docker (it asks for a Docker fixture, directly or through another
    fixture) is marked ``docker``, so ``-m "not docker"`` is an honest fast loop."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if DOCKER_FIXTURES.intersection(names):
            item.add_marker(pytest.mark.docker)
        if POSTGRES_FIXTURES.intersection(names):
            item.add_marker(pytest.mark.postgres)
        if REDIS_FIXTURES.intersection(names):
            item.add_marker(pytest.mark.redis)
