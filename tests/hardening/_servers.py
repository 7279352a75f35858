"""In-process servers for the hardening tests, each with its own data dir under ``tmp_path``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from loop_server.runtime import ServerHandle, run_server
from tests.conftest import make_config

# Start-up of a real server (store, services, listener) within this, even on a loaded machine.
START_DEADLINE = 20

StartServer = Callable[..., Any]


@pytest.fixture
def start_server(nursery: trio.Nursery, tmp_path: Path) -> Iterator[StartServer]:
    """Start a real server with ``overrides`` of the test config; shut down after the test."""
    handles: list[ServerHandle] = []

    async def start(**overrides: Any) -> ServerHandle:
        config = make_config(tmp_path / f"server{len(handles)}", **overrides)
        with trio.fail_after(START_DEADLINE):
            handle: ServerHandle = await nursery.start(partial(run_server, config))
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.shutdown()
