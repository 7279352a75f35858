"""Two real servers (``run_server``, each with its own data dir and SQLite) sharing one real
Redis: what is done over REST on one reaches ``/api/ws`` clients of the other, and a client can
resume on either with ``?since=``."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection

from loop_server.runtime import ServerHandle, StartupError, run_server
from tests.conftest import make_config
from tests.events.events_helpers import connect_ws
from tests.events.test_redis_relay import OUTAGE
from tests.services.servers import free_port

DEADLINE = 20


@asynccontextmanager
async def running(tmp_path: Path, redis_url: str) -> AsyncIterator[ServerHandle]:
    config = make_config(tmp_path, redis_url=redis_url)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(DEADLINE):
            handle: ServerHandle = await nursery.start(partial(run_server, config))
        try:
            yield handle
        finally:
            handle.shutdown()


async def next_of(ws: WebSocketConnection, event_type: str) -> dict[str, Any]:
    with trio.fail_after(DEADLINE):
        while True:
            event = dict(json.loads(await ws.get_message()))
            if event["type"] == event_type:
                return event


async def test_events_cross_servers_and_resume_on_either(tmp_path: Path, redis_url: str) -> None:
    async with running(tmp_path / "a", redis_url) as a, running(tmp_path / "b", redis_url) as b:
        async with connect_ws(b.port, "/api/ws?hello=1") as on_b:
            hello = await next_of(on_b, "hello")
            assert hello["epoch"] == a.services.hub.epoch == b.services.hub.epoch
            async with httpx.AsyncClient(base_url=a.url, timeout=10) as http:
                for name in ("one", "two", "three"):
                    response = await http.post("/api/channels/create", json={"name": name})
                    assert response.status_code == 201, response.text
            created = [await next_of(on_b, "channel.created") for _ in range(3)]
        assert [e["seq"] for e in created] == [1, 2, 3]
        # The client saw seq 1 on B and resumes on A: exactly 2 and 3 are replayed.
        resource = f"/api/ws?hello=1&since=1&epoch={hello['epoch']}"
        async with connect_ws(a.port, resource) as on_a:
            assert (await next_of(on_a, "hello"))["seq"] == 3
            replayed = [await next_of(on_a, "channel.created") for _ in range(2)]
        assert replayed == created[1:]


@OUTAGE
async def test_unreachable_redis_fails_the_start_up(tmp_path: Path) -> None:
    config = make_config(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with trio.fail_after(DEADLINE), pytest.raises(StartupError, match="unreachable"):
        await run_server(config)
    gc.collect()
