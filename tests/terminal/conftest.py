"""Fixtures for the terminal tests: real containers of the test image, a real terminal
manager, and ``serve()`` on 127.0.0.1 port 0 with the terminal endpoint.

The rules every test here follows are in the docstrings of the test modules.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from docker.models.containers import Container

from loop_server.containers import (
    APP_LABEL,
    APP_VALUE,
    CHANNEL_LABEL,
    ChannelContainers,
    ContainerSettings,
    DockerEngine,
    DockerExec,
)
from loop_server.serving import EventsEndpoint, TerminalEndpoint, serve
from loop_server.terminal import InteractiveCommands, SessionManager
from tests.docker.fixtures import Containers
from tests.events.events_helpers import allow_all, make_app
from tests.terminal.terminal_helpers import FakeChannels, hypercorn_config, loopback_socket

TEST_IMAGE = "loop-test:latest"

#: ``start_terminal_server(finder=..., stopper=...)`` default: real channel containers.
DEFAULT: Any = object()


def start_shell(containers: Containers, *, foreign: bool = False, **labels: str) -> Container:
    """A running ``sleep infinity`` container of the test image, no network, removed after
    the test. create + start: ``run`` would pull a missing image. It carries loop-server's
    labels (terminals open only in its containers) unless ``foreign``: then it is someone
    else's container, as a user's database container would be."""
    ours = {} if foreign else {APP_LABEL: APP_VALUE, CHANNEL_LABEL: "tc-shell"}
    container = containers.client.containers.create(
        containers.image,
        ["sleep", "infinity"],
        network_mode="none",
        labels={**containers.labels, **ours, **labels},
    )
    container.start()
    return container


@pytest.fixture
def shell_container(docker_containers: Containers) -> Container:
    return start_shell(docker_containers)


@pytest.fixture
async def engine() -> AsyncIterator[DockerEngine]:
    engine = DockerEngine()
    yield engine
    engine.close()


@pytest.fixture
async def manager(nursery: trio.Nursery, engine: DockerEngine) -> SessionManager:
    """A terminal manager on the real engine, running in the test's nursery."""
    sessions = SessionManager(DockerExec(engine))
    await nursery.start(sessions.run)
    return sessions


@pytest.fixture
def loop_dir(tmp_path: Path) -> Path:
    path = tmp_path / "loop"
    path.mkdir()
    return path


@pytest.fixture
def channels() -> FakeChannels:
    return FakeChannels()


@pytest.fixture
def new_channel(docker_containers: Containers) -> Callable[[], str]:
    """A fresh channel id; any container labelled with it is removed after the test."""

    def make() -> str:
        channel_id = "tc" + secrets.token_hex(5)
        docker_containers.also_remove(f"loop-channel={channel_id}")
        return channel_id

    return make


@dataclass
class TerminalServer:
    port: int
    endpoint: TerminalEndpoint
    shutdown: trio.Event = field(default_factory=trio.Event)
    finished: trio.Event = field(default_factory=trio.Event)

    @property
    def resource(self) -> str:
        return self.endpoint.path


StartTerminalServer = Callable[..., Awaitable[TerminalServer]]


@pytest.fixture
def start_terminal_server(
    nursery: trio.Nursery,
    engine: DockerEngine,
    loop_dir: Path,
    channels: FakeChannels,
    manager: SessionManager,
) -> StartTerminalServer:
    """Start ``serve()`` with a terminal endpoint: by default a real manager, and channel
    containers of the test image (network none) as finder and stopper."""

    async def start(
        *,
        manager: Any = manager,
        authorize: Callable[[list[tuple[bytes, bytes]], dict[str, str]], bool] = allow_all,
        finder: Any = DEFAULT,
        stopper: Any = DEFAULT,
        graceful_timeout: float = 5.0,
        **options: Any,
    ) -> TerminalServer:
        containers = ChannelContainers(
            engine, ContainerSettings(image=TEST_IMAGE, loop_dir=str(loop_dir), network="none")
        )
        options.setdefault("channels", channels)
        options.setdefault(
            "cmd_builder", InteractiveCommands(loop_dir=str(loop_dir), claude_bin="echo")
        )
        endpoint = TerminalEndpoint(
            manager,
            authorize,
            finder=containers if finder is DEFAULT else finder,
            stopper=containers if stopper is DEFAULT else stopper,
            **options,
        )
        sock = loopback_socket()
        server = TerminalServer(port=sock.getsockname()[1], endpoint=endpoint)

        async def run(task_status: trio.TaskStatus[list[str]]) -> None:
            try:
                await serve(
                    make_app(),
                    hypercorn_config(graceful_timeout),
                    [sock],
                    EventsEndpoint(None, authorize),
                    terminal=endpoint,
                    shutdown_trigger=server.shutdown.wait,
                    task_status=task_status,
                )
            finally:
                server.finished.set()

        await nursery.start(run)
        return server

    return start
