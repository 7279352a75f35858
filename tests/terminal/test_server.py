"""The terminal through the whole server, as runtime.py wires it: a channel made over REST,
a terminal opened on it, the listing's ``container_running``, stop (SPEC §5.2, §5.6, A.2).

Rules: the real server (``server``/``client`` fixtures: 127.0.0.1 port 0, SQLite in
``tmp_path``) with channel containers of the test image (network none), removed after each
test; every wait has an absolute deadline; nothing sleeps to wait for a result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected

from loop_server.config import Config
from loop_server.runtime import ServerHandle
from loop_server.terminal import SessionManager
from tests.conftest import make_config
from tests.docker.fixtures import Containers
from tests.events.events_helpers import connect_ws
from tests.terminal.terminal_helpers import DEADLINE, open_terminal

pytestmark = pytest.mark.usefixtures("loop_test_image")

RESOURCE = "/api/ws/terminal"


async def listing_of(client: httpx.AsyncClient, channel_id: str) -> dict[str, Any]:
    listing = (await client.get("/api/channels")).json()
    (entry,) = [c for c in listing if c["channel_id"] == channel_id]
    assert isinstance(entry, dict)
    return entry


async def test_terminal_on_a_channel_then_stop(
    server: ServerHandle,
    client: httpx.AsyncClient,
    docker_containers: Containers,
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with trio.fail_after(DEADLINE):
        response = await client.post("/api/channels", json={"dir_path": str(project)})
        channel_id = response.json()["channel_id"]
        docker_containers.also_remove(f"loop-channel={channel_id}")
        assert (await listing_of(client, channel_id))["container_running"] is False
        async with open_terminal(server.port) as term:
            await term.create(channel_id=channel_id, cmd=["/bin/sh"])
            # The shell container has the channel's directory mounted at the same path.
            await term.run(f"touch {project}/from-terminal; echo t-$((5+6))", b"t-11")
            assert (project / "from-terminal").exists()
            assert (await listing_of(client, channel_id))["container_running"] is True
            await term.send(type="stop")
            assert await term.status() == {"type": "closed"}
            assert await term.status() == {"type": "stopped"}
            # Removed before `stopped`: the very next listing shows it.
            assert (await listing_of(client, channel_id))["container_running"] is False
    terminals = server.services.terminals
    assert isinstance(terminals, SessionManager)
    assert terminals.statistics().sessions == 0


class TestWithAToken:
    @pytest.fixture
    def config(self, tmp_path: Path) -> Config:
        return make_config(tmp_path, token="s3cret")

    async def test_the_token_is_required(self, server: ServerHandle) -> None:
        with trio.fail_after(DEADLINE):
            with pytest.raises(ConnectionRejected) as rejected:
                async with connect_ws(server.port, RESOURCE):
                    pass  # pragma: no cover
            assert (rejected.value.status_code, rejected.value.body) == (401, b"unauthorized\n")
            async with open_terminal(server.port, RESOURCE + "?token=s3cret") as term:
                await term.send(type="input", data="")
                assert await term.error("no_session") == "no active session"
            async with connect_ws(
                server.port, RESOURCE, extra_headers=[(b"Authorization", b"Bearer s3cret")]
            ) as ws:
                await ws.ping()
