"""Fixtures for the events tests: a real ``serve()`` listener on 127.0.0.1, port 0."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
import trio
from hypercorn.config import Config

from loop_server.events import EventsHub
from loop_server.serving import EventsEndpoint, serve
from tests.events.events_helpers import DEFAULT_HUB, RunningServer, StartServer, allow_all, make_app


@pytest.fixture
def start_server(nursery: trio.Nursery) -> StartServer:
    """Start ``serve()`` on 127.0.0.1, port 0, in the test's nursery."""

    async def start(
        *,
        hub: EventsHub | None = DEFAULT_HUB,
        authorize: Callable[[list[tuple[bytes, bytes]], dict[str, str]], bool] = allow_all,
        graceful_timeout: float = 5.0,
        **endpoint_options: Any,
    ) -> RunningServer:
        if hub is DEFAULT_HUB:
            hub = EventsHub()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        config = Config()
        config.graceful_timeout = graceful_timeout
        config.accesslog = None
        endpoint = EventsEndpoint(hub, authorize, **endpoint_options)
        server = RunningServer(port=sock.getsockname()[1], hub=hub)

        async def run(task_status: trio.TaskStatus[list[str]]) -> None:
            try:
                await serve(
                    make_app(),
                    config,
                    [sock],
                    endpoint,
                    shutdown_trigger=server.shutdown.wait,
                    task_status=task_status,
                )
            finally:
                server.finished.set()

        await nursery.start(run)
        return server

    return start
