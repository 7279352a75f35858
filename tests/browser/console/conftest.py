"""Fixtures for the web console's browser tests.

Rules (as everywhere in tests/): the real server as a user runs it (a ``loop-server serve``
process on 127.0.0.1, SQLite in ``tmp_path``, agent and shell containers of the test image on
network ``none``, its ``claude`` a stub that speaks stream-json), Debian's Chromium driven by
Playwright (``tests/browser/conftest.py``), every wait under an absolute deadline (Playwright's
timeouts included), no sleeping for a result. Screenshots of each view are written to
``build/test-artifacts/console/`` (not committed) for a person to look at.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.browser.conftest import ARTIFACTS, Browser, BrowserPage
from tests.docker.fixtures import Containers
from tests.hardening._process import CLI, ServerProcess, serve_args, serve_process, server_env

SHOTS = ARTIFACTS / "console"
TOKEN = "console-test-token"
WAIT_MS = 60_000  # Playwright's deadline for any one wait, in milliseconds
TEST_IMAGE = "loop-test:latest"
STUB_CLAUDE = "/usr/local/bin/claude"


@dataclass
class Console:
    """A running server (restartable on the same port and data dir) and its console URL."""

    tmp_path: Path
    env: dict[str, str]
    data_dir: Path
    server: ServerProcess | None = None
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The address ``loop-server serve`` prints: the token in the fragment."""
        return f"{self.base}/#token={TOKEN}"

    def argv(self) -> list[str]:
        args = serve_args(self.data_dir, "--token", TOKEN)
        if self.port:
            args[args.index("127.0.0.1:0")] = f"127.0.0.1:{self.port}"
        return [*CLI, *args]


def server_environment(tmp_path: Path) -> dict[str, str]:
    return server_env(
        tmp_path,
        LOOP_CONTAINER_IMAGE=TEST_IMAGE,
        LOOP_CLAUDE_BIN=STUB_CLAUDE,
        LOOP_CONTAINER_NETWORK="none",
        LOOP_CONTAINER_TIMEOUT="120",
        LOOP_POLL_INTERVAL="3600",  # tasks run when the test says "run now", not on their own
    )


@asynccontextmanager
async def running(console: Console) -> AsyncIterator[ServerProcess]:
    async with serve_process(console.argv(), console.env) as server:
        console.server = server
        console.port = server.port
        yield server


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    site = Console(tmp_path, server_environment(tmp_path), tmp_path / "data")
    async with running(site):
        yield site


@pytest.fixture
async def docker_console(
    tmp_path: Path, loop_test_image: Any, docker_containers: Containers
) -> AsyncIterator[tuple[Console, Containers]]:
    """The console with Docker: agent runs and terminals in real containers, removed after."""
    site = Console(tmp_path, server_environment(tmp_path), tmp_path / "data")
    async with running(site):
        yield site, docker_containers


async def kill(console: Console) -> None:
    """SIGKILL: no graceful shutdown, no close frames — as when the machine loses power."""
    assert console.server is not None
    console.server.send_signal(signal.SIGKILL)
    with trio.fail_after(30):
        await console.server.wait()


def shot(page: Any, name: str) -> None:
    """Save a screenshot of the page as an artifact (on the browser thread)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


async def new_page(browser: Browser, **options: Any) -> tuple[BrowserPage, Callable[[], Any]]:
    """A page in a context of its own (a phone's viewport, dark mode); returns it and its
    closer (call it on the way out)."""
    thread = browser.thread
    context = await thread.call(lambda: browser.chromium.new_context(**options))
    page = BrowserPage(thread=thread, page=await thread.call(context.new_page))
    return page, context.close
