"""Agent runs on the real Docker engine with the test image's claude stub.

The stub (tests/docker/image/claude-stub) is steered by markers in the prompt: ``STUB:ECHO_ARGS``
answers with its own arguments, ``STUB:FAIL`` reports ``is_error``, ``STUB:EXIT`` exits 3 with
no result, ``STUB:HANG`` never ends, ``STUB:GARBAGE`` prints non-JSON lines, ``STUB:SLOW`` waits
1 s between lines, ``STUB:TURNS=n`` streams n turns.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
import trio

from loop_server.agent import AgentRunner, AgentSettings, Orchestrator
from loop_server.clock import SystemClock
from loop_server.containers import CHANNEL_LABEL, ContainerSettings, DockerEngine
from loop_server.domain import ChannelUpsert, Message
from loop_server.services.messages import MessageService
from loop_server.store import Store
from tests.conftest import STUB_CLAUDE, TEST_IMAGE


@dataclass
class Recorder:
    """An ``EventBroadcaster`` that keeps what it was given, and wakes waiters."""

    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    def _add(self, kind: str, channel_id: str, data: dict[str, Any]) -> None:
        self.events.append((kind, channel_id, data))
        self.changed.set()
        self.changed = trio.Event()

    def broadcast_message_created(self, message: Message) -> None:
        self._add(
            "message.created",
            message.channel_id,
            {"content": message.content, "is_bot": message.is_bot},
        )

    def broadcast_message_streaming(self, channel_id: str, content: str) -> None:
        self._add("message.streaming", channel_id, {"content": content})

    def broadcast_agent_status(self, channel_id: str, status: str, error: str = "") -> None:
        self._add("agent.status", channel_id, {"status": status, "error": error})

    def broadcast_tool_use(
        self, channel_id: str, tool_name: str, tool_input: str, tool_use_id: str = ""
    ) -> None:
        data = {"tool_name": tool_name, "input": tool_input, "tool_use_id": tool_use_id}
        self._add("tool.use", channel_id, data)

    def broadcast_agent_activity(
        self, channel_id: str, activity: str, model: str = "", description: str = ""
    ) -> None:
        data = {"activity": activity, "model": model, "description": description}
        self._add("agent.activity", channel_id, data)

    def of(self, channel_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [(k, d) for k, c, d in self.events if c == channel_id]

    async def wait_for(self, channel_id: str, status: str, count: int = 1) -> None:
        """Wait until ``channel_id`` has had ``count`` agent.status events of ``status``."""
        with trio.fail_after(60):
            while (
                sum(
                    1
                    for k, d in self.of(channel_id)
                    if k == "agent.status" and d["status"] == status
                )
                < count
            ):
                await self.changed.wait()


@dataclass
class Agents:
    store: Store
    orchestrator: Orchestrator
    recorder: Recorder
    loop_dir: Path
    engine: DockerEngine

    async def history(self, channel_id: str) -> list[Message]:
        return await self.store.messages.recent(channel_id, 200)

    async def new_channel(self) -> str:
        """A stored channel of the local platform (a message needs an existing channel)."""
        channel_id = new_channel()
        await self.store.channels.upsert(
            ChannelUpsert(channel_id=channel_id, name=channel_id, platform="local"),
            SystemClock().now(),
        )
        return channel_id


def new_channel() -> str:
    return "t" + secrets.token_hex(6)


def make_agents_factory(tmp_path: Path):  # type: ignore[no-untyped-def]
    async def factory(
        nursery: trio.Nursery,
        *,
        image: str = TEST_IMAGE,
        timeout: float = 60,  # noqa: ASYNC109 - the agent run's timeout, not this call's
        engine: DockerEngine | None = None,
        max_concurrent_runs: int = 4,
        claude_dir: str | None = None,
    ) -> Agents:
        """``claude_dir``: Claude's state dir for the containers (default: one in tmp_path,
        as a server has; "" for none, so no session outlives its container)."""
        store = await Store.open(tmp_path / f"loop-{secrets.token_hex(3)}.db")
        recorder = Recorder()
        clock = SystemClock()
        messages = MessageService(store.messages, recorder, clock=clock)
        containers = ContainerSettings(
            image=image,
            loop_dir=str(tmp_path),
            network="none",
            claude_dir=str(tmp_path / "claude") if claude_dir is None else claude_dir,
        )
        engine = engine or DockerEngine()
        runner = AgentRunner(
            engine,
            containers,
            AgentSettings(claude_bin=STUB_CLAUDE, timeout=timeout),
        )
        orchestrator = Orchestrator(
            store,
            messages,
            runner,
            recorder,
            clock=clock,
            loop_dir=str(tmp_path),
            max_concurrent_runs=max_concurrent_runs,
        )
        await nursery.start(orchestrator.run)
        return Agents(store, orchestrator, recorder, tmp_path, engine)

    return factory


@pytest.fixture
async def agents_factory(tmp_path: Path, loop_test_image: object):  # type: ignore[no-untyped-def]
    """Builds orchestrators on real parts; each is drained and closed after the test."""
    built: list[Agents] = []
    factory = make_agents_factory(tmp_path)

    async def tracked(nursery: trio.Nursery, **options: Any) -> Agents:
        agents: Agents = await factory(nursery, **options)
        built.append(agents)
        return agents

    yield tracked
    for agents in built:
        with trio.fail_after(60):
            await agents.orchestrator.wait_idle()
        await agents.store.close()
        agents.engine.close()


@pytest.fixture
async def agents(nursery: trio.Nursery, agents_factory) -> Agents:  # type: ignore[no-untyped-def]
    built: Agents = await agents_factory(nursery)
    return built


def channel_containers(client: docker.DockerClient, channel_id: str) -> list[Any]:
    return list(
        client.containers.list(all=True, filters={"label": f"{CHANNEL_LABEL}={channel_id}"})
    )
