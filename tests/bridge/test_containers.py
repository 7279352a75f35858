"""Channel containers get the agent socket's dir and a token of their own, and the token dies
with the container: real Docker, the test image, ``--network none``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import trio

from loop_server.access import AgentTokens
from loop_server.channel_paths import mcp_config_path
from loop_server.containers import CHANNEL_LABEL
from loop_server.runtime import ServerHandle
from tests.conftest import agents_idle, create_channel

pytestmark = pytest.mark.usefixtures("loop_test_image")


def mounts_of(container: Any) -> dict[str, tuple[str, bool]]:
    """Container path → (host path, writable)."""
    return {m["Destination"]: (m["Source"], m["RW"]) for m in container.attrs["Mounts"]}


async def exec_output(client: docker.DockerClient, container_id: str, *cmd: str) -> str:
    def run() -> str:
        result = client.containers.get(container_id).exec_run(list(cmd))
        assert result.exit_code == 0, result.output
        return str(result.output.decode())

    return await trio.to_thread.run_sync(run)


def mounts_file(client: docker.DockerClient, container_id: str) -> str:
    return mounts_of(client.containers.get(container_id))["/run/loop/api-token"][0]


def check_container(
    server: ServerHandle, client: docker.DockerClient, container_id: str, channel_id: str
) -> str:
    """The container's mounts are the socket dir and its own live token; returns the token."""
    container = client.containers.get(container_id)
    mounts = mounts_of(container)
    socket_dir = str(Path(str(server.config.socket_path)).parent)
    assert mounts["/run/loop/socket"] == (socket_dir, True)
    token_file, writable = mounts["/run/loop/api-token"]
    assert not writable
    token = Path(token_file).read_bytes()
    tokens: AgentTokens = server.services.agent_tokens
    assert tokens.channel_of(token) == channel_id
    assert container.labels["loop-token"] == Path(token_file).name
    return token.decode()


async def test_a_shell_container_holds_its_channels_token_until_removed(
    server: ServerHandle, client: httpx.AsyncClient, docker_client: docker.DockerClient
) -> None:
    channel_id = await create_channel(client, "shell")
    containers = server.services.containers
    tokens: AgentTokens = server.services.agent_tokens
    container_id = await containers.find_container_by_channel(channel_id, "")
    try:
        token = await trio.to_thread.run_sync(
            check_container, server, docker_client, container_id, channel_id
        )
        # What the bridge inside reads, and the socket it talks to.
        assert await exec_output(docker_client, container_id, "cat", "/run/loop/api-token") == (
            token
        )
        listing = await exec_output(docker_client, container_id, "ls", "/run/loop/socket")
        assert listing.split() == ["api.sock"]
        work_dir = server.config.data_dir / channel_id / "work"
        config = json.loads(await trio.Path(mcp_config_path(str(work_dir), channel_id)).read_text())
        # A token whose container is gone (here: never made) is revoked by the prune the
        # server runs at start-up; the shell container's own is kept.
        loose = tokens.issue(channel_id)
        assert await containers.prune_tokens() == 1
        assert tokens.token_ids() == {Path(mounts_file(docker_client, container_id)).name}
        assert not await trio.Path(loose.path).exists()
        assert config["mcpServers"]["loop"] == {
            "command": "loop-server",
            "args": [
                "mcp",
                "--channel-id",
                channel_id,
                "--socket",
                "/run/loop/socket/api.sock",
                "--token-file",
                "/run/loop/api-token",
            ],
        }
    finally:
        await containers.container_remove(container_id)
    assert tokens.channel_of(token.encode()) is None
    assert tokens.statistics().live_tokens == 0


async def test_an_agent_runs_token_dies_with_its_container(
    server: ServerHandle, client: httpx.AsyncClient, docker_client: docker.DockerClient
) -> None:
    channel_id = await create_channel(client, "run")
    tokens: AgentTokens = server.services.agent_tokens
    label = f"{CHANNEL_LABEL}={channel_id}"
    # The engine's own event says when the run's container has started.
    started = docker_client.events(
        decode=True, filters={"type": "container", "event": "start", "label": label}
    )
    try:
        posted = await client.post(
            "/api/messages", json={"channel_id": channel_id, "content": "STUB:HANG wait"}
        )
        assert posted.status_code == 204
        with trio.fail_after(60):
            event = await trio.to_thread.run_sync(next, started, abandon_on_cancel=True)
    finally:
        started.close()
    token = await trio.to_thread.run_sync(
        check_container, server, docker_client, event["id"], channel_id
    )

    def running() -> list[Any]:
        return list(docker_client.containers.list(filters={"label": label}))

    stopped = await client.post("/api/commands", json={"channel_id": channel_id, "command": "stop"})
    assert stopped.status_code == 204
    await agents_idle(server)
    assert tokens.channel_of(token.encode()) is None
    assert await trio.to_thread.run_sync(running) == []
