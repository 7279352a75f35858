"""The start-up prune of agent tokens reads the engine's container list alone (no Docker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.errors
import trio

from loop_server.access import AgentTokens
from loop_server.containers import ContainerSettings, DockerEngine
from loop_server.containers._channel import ChannelContainers
from loop_server.containers._labels import TOKEN_LABEL


class _CreatingEngineClient:
    """What dockerd 20.10 answers while a token's container is being created: the list has
    it, inspecting it is "No such container" (the window a real engine widens under load)."""

    def __init__(self, held_token_id: str) -> None:
        self._entry = {"Id": "c0ffee", "State": "created", "Labels": {TOKEN_LABEL: held_token_id}}
        self.api = self
        self.containers = self

    def list(self, **_: Any) -> list[Any]:  # containers.list: lists, then inspects each one
        raise docker.errors.NotFound("No such container: c0ffee")

    def __call__(self, **_: Any) -> list[dict[str, Any]]:  # api.containers: the list alone
        return [self._entry]


class _Engine(DockerEngine):
    def __init__(self, client: object) -> None:
        super().__init__()
        self._fake = client

    async def client(self) -> Any:
        return self._fake


async def test_a_container_being_created_keeps_its_token(tmp_path: Path) -> None:
    tokens = AgentTokens(tmp_path / "agent-tokens")
    tokens.load()
    held, loose = tokens.issue("chan"), tokens.issue("chan")
    settings = ContainerSettings(image="unused", loop_dir=str(tmp_path), tokens=tokens)
    containers = ChannelContainers(_Engine(_CreatingEngineClient(held.token_id)), settings)
    assert await containers.prune_tokens() == 1
    assert tokens.token_ids() == {held.token_id}
    assert not await trio.Path(loose.path).exists()
