"""The real Claude Code CLI in the real agent image, against the fake Messages API.

Containers stay on loopback only: a ``--network none`` *holder* container owns a network
namespace with nothing but ``lo``; every agent container joins it
(``container_network = "container:<holder id>"``), and the fake API listens on 127.0.0.1
inside it. The listening socket is made there by a short ``nsenter -t <holder pid> -n``
helper and handed back over a unix socket (SCM_RIGHTS): a socket keeps the namespace it was
made in, so this test process serves the fake API on it with Trio.

The image is built by ``make agent-image`` (``make test`` does it). Without it, or without
root for ``nsenter``, these tests skip loudly (fail with ``LOOP_REQUIRE_DOCKER=1``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import docker
import docker.errors
import pytest
import trio

from loop_server.config import Config
from tests.conftest import make_config
from tests.docker.fixtures import RUN_LABEL, TEST_LABEL, docker_unavailable
from tests.fakes.anthropic_api import FakeAnthropic

AGENT_IMAGE = os.environ.get("LOOP_AGENT_IMAGE", "loop-agent:latest")
HOLDER_IMAGE = os.environ.get("LOOP_TEST_IMAGE", "loop-test:latest")
FAKE_KEY = "sk-ant-fake-key"

pytestmark = pytest.mark.docker


@pytest.fixture(scope="session")
def agent_image(docker_client: docker.DockerClient) -> str:
    try:
        docker_client.images.get(AGENT_IMAGE)
    except docker.errors.ImageNotFound:
        docker_unavailable(f"the agent image {AGENT_IMAGE} is missing (make agent-image)")
    if os.geteuid() != 0 or shutil.which("nsenter") is None:
        docker_unavailable("the real-CLI tests need root and nsenter (to listen in a netns)")
    return AGENT_IMAGE


@dataclass(frozen=True)
class Holder:
    id: str
    pid: int


@pytest.fixture(scope="session")
def holder(docker_client: docker.DockerClient, agent_image: str) -> Iterator[Holder]:
    """The ``--network none`` container whose network namespace the agents share."""
    container = docker_client.containers.run(
        HOLDER_IMAGE,
        ["sleep", "86400"],
        detach=True,
        network_mode="none",
        labels={TEST_LABEL: "1", RUN_LABEL: "agent-real-holder"},
    )
    try:
        container.reload()
        yield Holder(container.id, int(container.attrs["State"]["Pid"]))
    finally:
        container.remove(force=True)


# Runs inside the holder's network namespace: listen on its loopback, send the fd back.
_LISTEN = """
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(128)
c = socket.socket(socket.AF_UNIX)
c.connect(sys.argv[1])
socket.send_fds(c, [b"fd"], [s.fileno()])
"""


def listen_in_netns(pid: int) -> socket.socket:
    """A TCP socket listening on 127.0.0.1 in the network namespace of process ``pid``."""
    with tempfile.TemporaryDirectory(prefix="loop-netns-") as tmp:
        path = os.path.join(tmp, "fd.sock")
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(path)
            server.listen(1)
            server.settimeout(30)
            helper = subprocess.Popen(
                ["nsenter", "-t", str(pid), "-n", sys.executable, "-c", _LISTEN, path]
            )
            try:
                conn, _ = server.accept()
                with conn:
                    _, fds, _, _ = socket.recv_fds(conn, 16, 1)
            finally:
                assert helper.wait(timeout=30) == 0
    [fd] = fds
    return socket.socket(fileno=fd)


@dataclass
class FakeApi:
    fake: FakeAnthropic
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def fake_api(holder: Holder, nursery: trio.Nursery) -> AsyncIterator[FakeApi]:
    sock = listen_in_netns(holder.pid)
    port = sock.getsockname()[1]
    sock.setblocking(False)
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    fake = FakeAnthropic()
    nursery.start_soon(fake.serve, listener)
    yield FakeApi(fake, port)


def real_config(tmp_path: Path, holder: Holder, api: FakeApi, **overrides: object) -> Config:
    """A server whose agents are the real CLI in the agent image, talking to ``api``."""
    base = make_config(
        tmp_path,
        container_image=AGENT_IMAGE,
        claude_bin="claude",
        container_network=f"container:{holder.id}",
        container_timeout=120,
        anthropic_api_key=FAKE_KEY,
    )
    extra = {"container_env": {"ANTHROPIC_BASE_URL": api.url}}
    return replace(base, extra=extra, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def config(tmp_path: Path, holder: Holder, fake_api: FakeApi) -> Config:
    return real_config(tmp_path, holder, fake_api)
