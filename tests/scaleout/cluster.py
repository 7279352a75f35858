"""Several real ``loop-server serve`` processes on one PostgreSQL and one Redis.

Each instance has its own data dir, instance id and loopback port, and they share state only
through ``LOOP_DATABASE_URL`` and ``LOOP_REDIS_URL``, as a deployment would. Agent runs fail at
once (``DOCKER_HOST`` points at a socket nobody listens on), so every message and task is a real
write with a real outcome and no containers. Rules as in ``tests/hardening/_process.py``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.hardening._process import (
    CLI,
    ServerProcess,
    serve_args,
    serve_process,
    server_env,
    unreachable_docker,
)
from tests.services.servers import PostgresServer


@asynccontextmanager
async def cluster(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    *,
    instances: int = 3,
    poll_interval: float = 0.5,
) -> AsyncIterator[list[ServerProcess]]:
    async with AsyncExitStack() as stack:
        servers = []
        for n in range(instances):
            data_dir = tmp_path / f"instance-{n}"
            data_dir.mkdir()
            env = server_env(
                tmp_path,
                DOCKER_HOST=unreachable_docker(tmp_path),
                LOOP_DATABASE_URL=database_url,
                LOOP_REDIS_URL=redis_url,
                LOOP_INSTANCE_ID=f"instance-{n}",
                LOOP_POLL_INTERVAL=str(poll_interval),
            )
            servers.append(
                await stack.enter_async_context(serve_process([*CLI, *serve_args(data_dir)], env))
            )
        yield servers


@dataclass
class Subscriber:
    """One ``/api/ws?hello=1`` client recording every event frame it receives, in order."""

    name: str
    hello: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    changed: trio.Event = field(default_factory=trio.Event)

    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.events]

    def user_contents(self) -> list[str]:
        return [
            e["data"]["content"]
            for e in self.events
            if e["type"] == "message.created" and not e["data"]["is_bot"]
        ]

    async def run(
        self, url: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, take ``hello``, then record until the server goes away."""
        try:
            async with open_websocket_url(url) as ws:
                self.hello = json.loads(await ws.get_message())
                assert self.hello["type"] == "hello", self.hello
                task_status.started()
                while True:
                    frame = json.loads(await ws.get_message())
                    assert frame["type"] not in ("hello", "replay.truncated"), frame
                    self.events.append(frame)
                    self.changed.set()
                    self.changed = trio.Event()
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.changed.set()

    async def wait_for_contents(self, wanted: set[str]) -> None:
        while not wanted.issubset(self.user_contents()):
            if self.closed:
                missing = wanted - set(self.user_contents())
                raise AssertionError(f"{self.name} closed missing {len(missing)}: {missing}")
            await self.changed.wait()

    def agent_statuses(self) -> list[str]:
        return [e["data"]["status"] for e in self.events if e["type"] == "agent.status"]

    async def wait_for_runs(self, count: int) -> None:
        """Until ``count`` agent runs were seen starting: runs lag behind the posts (one at a
        time per channel, across the instances), so the last post says nothing about them."""
        while self.agent_statuses().count("running") < count:
            if self.closed:
                raise AssertionError(f"{self.name} closed after runs {self.agent_statuses()}")
            await self.changed.wait()


def events_url(server: ServerProcess, **query: object) -> str:
    params = "&".join(f"{k}={v}" for k, v in {"hello": 1, **query}.items())
    return f"ws://127.0.0.1:{server.port}/api/ws?{params}"


def assert_contiguous(subscriber: Subscriber, start: int) -> None:
    """Seqs run start+1, start+2, ... with no gap and no duplicate."""
    seqs = subscriber.seqs()
    expected = list(range(start + 1, start + 1 + len(seqs)))
    if seqs != expected:
        bad = next(i for i, (a, b) in enumerate(zip(seqs, expected, strict=True)) if a != b)
        raise AssertionError(
            f"{subscriber.name}: seq {seqs[bad]} at position {bad}, expected {expected[bad]}"
            f" (around: {seqs[max(0, bad - 3) : bad + 3]})"
        )


def psql(server: PostgresServer, url: str, sql: str) -> str:
    """One query through the real ``psql`` client, rows as ``a|b`` lines."""
    done = subprocess.run(
        [str(server.bin_dir / "psql"), url, "-XAtc", sql], check=True, capture_output=True
    )
    return done.stdout.decode().strip()
