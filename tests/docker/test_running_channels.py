"""Container state from Docker's event stream: the channel listing costs no Docker call.

Real engine, real server. Containers are started behind the server's back with the test's own
client (so only the event stream can tell the server), and the stream is cut by a Trio unix
socket proxy standing between the server's engine and dockerd. Rules as in tests/conftest.py:
loopback only, absolute deadlines, waits on the state change itself (``wait_changed``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import docker
import httpx
import pytest
import trio

from loop_server.containers import CHANNEL_LABEL, DockerEngine, RunningChannels
from loop_server.runtime import ServerHandle
from loop_server.services.git import GitBranchReader
from tests.docker.fixtures import Containers

DEADLINE = 30


async def wait_until(running: RunningChannels, done: Callable[[], bool]) -> None:
    with trio.fail_after(DEADLINE):
        while not done():
            await running.wait_changed()


def running_of(server: ServerHandle) -> RunningChannels:
    running = server.services.running_channels
    assert isinstance(running, RunningChannels)
    return running


def make_project(project: Path, n: int) -> None:
    """A project dir; every other one a git repository on branch ``b<n>``."""
    project.mkdir()
    if n % 2 == 0 and shutil.which("git"):
        ident = ["-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run(["git", "init", "-q", "-b", f"b{n}"], cwd=project, check=True)
        commit = ["git", *ident, "commit", "-q", "--allow-empty", "-m", "x"]
        subprocess.run(commit, cwd=project, check=True)


async def test_listing_cost_does_not_grow_with_channels(
    server: ServerHandle,
    client: httpx.AsyncClient,
    tmp_path: Path,
    docker_client: docker.DockerClient,
) -> None:
    running = running_of(server)
    branches = server.services.deps.branches
    assert isinstance(branches, GitBranchReader)
    await wait_until(running, lambda: running.statistics().live)

    async def add_channels(count: int, start: int) -> None:
        for n in range(start, start + count):
            project = tmp_path / f"p{n}"
            await trio.to_thread.run_sync(make_project, project, n)
            response = await client.post("/api/channels", json={"dir_path": str(project)})
            assert response.status_code == 200

    with trio.fail_after(DEADLINE * 2):
        await add_channels(1, 0)
        first = (await client.get("/api/channels")).json()
        listings = running.statistics().listings
        for _ in range(3):
            assert (await client.get("/api/channels")).json() == first
        await add_channels(59, 1)
        for _ in range(3):
            listed = (await client.get("/api/channels")).json()
    assert len(first) == 1 and len(listed) == 60
    if shutil.which("git"):
        assert {c["branch"] for c in listed if "branch" in c} == {f"b{n}" for n in range(0, 60, 2)}
    # Six listings of 1 and of 60 channels: no Docker listing, no git process.
    assert running.statistics().listings == listings
    assert branches.git_forks == 0


async def test_containers_started_and_stopped_elsewhere_show_from_their_events(
    server: ServerHandle, client: httpx.AsyncClient, docker_containers: Containers
) -> None:
    running = running_of(server)
    await wait_until(running, lambda: running.statistics().live)
    response = await client.post("/api/channels/create", json={"name": "evented"})
    channel_id = response.json()["channel_id"]

    async def listed_running() -> bool:
        [item] = (await client.get("/api/channels")).json()
        return bool(item["container_running"])

    assert await listed_running() is False
    listings = running.statistics().listings
    container = await trio.to_thread.run_sync(
        partial(docker_containers.start, ["sleep", "600"], labels={CHANNEL_LABEL: channel_id})
    )
    await wait_until(running, lambda: channel_id in running.known_running())
    assert await listed_running() is True
    await trio.to_thread.run_sync(partial(container.remove, force=True))
    await wait_until(running, lambda: channel_id not in running.known_running())
    assert await listed_running() is False
    assert running.statistics().listings == listings  # the events told it, not a listing


@dataclass
class DockerProxy:
    """Forwards a unix socket to dockerd's; ``cut`` drops every connection (the event stream
    with them), and while ``refusing`` new connections are closed at once."""

    target: str
    refusing: bool = False
    scopes: set[trio.CancelScope] = field(default_factory=set)

    async def handle(self, client: trio.SocketStream) -> None:
        async with client:
            if self.refusing:
                return
            upstream = await trio.open_unix_socket(self.target)
            async with upstream:
                with trio.CancelScope() as scope:
                    self.scopes.add(scope)
                    try:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._pump, client, upstream, nursery.cancel_scope)
                            nursery.start_soon(self._pump, upstream, client, nursery.cancel_scope)
                    finally:
                        self.scopes.discard(scope)

    @staticmethod
    async def _pump(src: trio.SocketStream, dst: trio.SocketStream, both: trio.CancelScope) -> None:
        try:
            async for chunk in src:
                await dst.send_all(chunk)
        except trio.BrokenResourceError:
            pass
        both.cancel()

    def cut(self) -> None:
        for scope in list(self.scopes):
            scope.cancel()


def _dockerd_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip(f"the engine is not on a unix socket ({host})")
    return host[len("unix://") :]


@pytest.fixture
async def proxied(
    nursery: trio.Nursery, tmp_path: Path, docker_client: docker.DockerClient
) -> AsyncIterator[tuple[DockerProxy, RunningChannels]]:
    proxy = DockerProxy(_dockerd_socket())
    path = str(tmp_path / "docker-proxy.sock")
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen()
    nursery.start_soon(partial(trio.serve_listeners, proxy.handle, [trio.SocketListener(sock)]))
    engine = DockerEngine(base_url=f"unix://{path}", timeout=10)
    running = RunningChannels(engine)
    await nursery.start(running.run)
    yield proxy, running
    engine.close()


async def test_stream_loss_is_reconciled_by_a_listing(
    proxied: tuple[DockerProxy, RunningChannels], docker_containers: Containers
) -> None:
    proxy, running = proxied
    await wait_until(running, lambda: running.statistics().live)
    before = running.statistics()
    assert (before.reconnects, before.listings) == (1, 1)
    channel_id = f"ch-{docker_containers.run_id}"

    proxy.refusing = True
    proxy.cut()
    await wait_until(running, lambda: not running.statistics().live)
    # While the stream is down, a container starts: no event can reach the server.
    await trio.to_thread.run_sync(
        partial(docker_containers.start, ["sleep", "600"], labels={CHANNEL_LABEL: channel_id})
    )
    assert channel_id not in running.known_running()
    proxy.refusing = False
    await wait_until(running, lambda: running.statistics().live)
    after = running.statistics()
    assert after.reconnects == 2 and after.listings == 2
    assert channel_id in await running.running_channel_ids()
