"""The agent container's settings come from the configuration a user gives a real
``loop-server serve`` process (SPEC A.5 step 5, A.1): network, memory and CPU limits, the
credentials in its environment, the model and the run's timeout — from the config file and the
environment, not only from a ``Config`` built in code.

Needs the Docker engine and the ``loop-test`` image. Waiting for the container to run polls the
engine (an external process with no event to wait on) under a deadline; everything else waits
on ``/api/ws`` events.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection

from loop_server.containers import CHANNEL_LABEL
from tests.conftest import STUB_CLAUDE, TEST_IMAGE, create_channel, next_event
from tests.events.events_helpers import connect_ws
from tests.hardening._process import CLI, serve_args, serve_process, server_env


def _containers(client: docker.DockerClient, channels: list[str]) -> list[Any]:
    found = client.containers.list(all=True, filters={"label": CHANNEL_LABEL})
    return [c for c in found if c.labels.get(CHANNEL_LABEL) in channels]


@contextlib.contextmanager
def _removed_afterwards(client: docker.DockerClient, channels: list[str]) -> Iterator[None]:
    try:
        yield
    finally:
        for container in _containers(client, channels):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


async def _status(ws: WebSocketConnection, channel_id: str, status: str) -> dict[str, Any]:
    while True:
        event = await next_event(ws)
        if (
            event["channel_id"] == channel_id
            and event["type"] == "agent.status"
            and event["data"]["status"] == status
        ):
            return dict(event["data"])


async def _running_container(client: docker.DockerClient, channel_id: str) -> Any:
    with trio.fail_after(30):
        while True:
            found = await trio.to_thread.run_sync(
                lambda: client.containers.list(
                    filters={"label": f"{CHANNEL_LABEL}={channel_id}", "status": "running"}
                )
            )
            if found:
                return found[0]
            await trio.sleep(0.05)


@pytest.mark.usefixtures("loop_test_image")
async def test_container_settings_come_from_config_file_and_environment(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "config.json").write_text(
        json.dumps(
            {
                "container_image": TEST_IMAGE,
                "claude_bin_path": STUB_CLAUDE,
                "container_memory_mb": 64,
                "container_cpus": 0.5,
                "container_timeout_sec": 3,
                "claude_model": "stub-model-from-file",
                "anthropic_api_key": "sk-from-file",
                "max_concurrent_runs": 2,
            }
        )
    )
    env = server_env(
        tmp_path, LOOP_CONTAINER_NETWORK="none", CLAUDE_CODE_OAUTH_TOKEN="oauth-from-env"
    )
    made: list[str] = []
    # The server is killed at the end: whatever happened, remove its containers here.
    with _removed_afterwards(docker_client, made), trio.fail_after(90):
        async with (
            serve_process([*CLI, *serve_args(data_dir)], env) as server,
            httpx.AsyncClient(base_url=server.url, timeout=30) as http,
            connect_ws(server.port, "/api/ws") as ws,
        ):
            hang, echo = await create_channel(http, "cfg-hang"), await create_channel(http, "e")
            made += [hang, echo]
            posted = await http.post(
                "/api/messages", json={"channel_id": hang, "content": "STUB:HANG"}
            )
            assert posted.status_code == 204, posted.text
            container = await _running_container(docker_client, hang)
            host = container.attrs["HostConfig"]
            assert host["NetworkMode"] == "none"
            assert host["Memory"] == 64 * 1024 * 1024
            assert host["NanoCpus"] == 500_000_000
            environment = container.attrs["Config"]["Env"]
            assert "ANTHROPIC_API_KEY=sk-from-file" in environment
            assert "CLAUDE_CODE_OAUTH_TOKEN=oauth-from-env" in environment
            # The file's timeout ends the hanging run (the default would be an hour).
            failed = await _status(ws, hang, "error")
            assert failed["error"] == "agent timed out after 3s"

            posted = await http.post(
                "/api/messages", json={"channel_id": echo, "content": "STUB:ECHO_ARGS hi"}
            )
            assert posted.status_code == 204, posted.text
            await _status(ws, echo, "completed")
            history = (await http.get(f"/api/channels/{echo}/messages")).json()["messages"]
            assert "--model stub-model-from-file --print" in history[0]["content"]
            # Both runs have ended, so the server has removed their containers itself.
            assert _containers(docker_client, [hang, echo]) == []
