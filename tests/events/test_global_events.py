"""Global events over the real server: channels, threads, tasks and containers appearing,
changing and going reach every events client, whatever its channel filter, in upstream's
names and payloads (docs/events.md, "Global events")."""

from __future__ import annotations

import json
from typing import Any

import docker
import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection

from loop_server.containers import APP_LABEL, APP_VALUE, CHANNEL_LABEL, ROLE_LABEL
from loop_server.containers._watcher import status_change
from loop_server.domain import Task
from loop_server.events import EventsHub
from loop_server.runtime import ServerHandle
from tests.conftest import create_channel
from tests.docker.fixtures import Containers
from tests.events.events_helpers import connect_ws


class InstantExecutor:
    async def execute(self, task: Task) -> str:
        return f"did {task.prompt}"


@pytest.fixture
def executor() -> InstantExecutor:
    return InstantExecutor()


async def _next(ws: WebSocketConnection, wanted: str) -> dict[str, Any]:
    """The next event of type ``wanted``; a global event can never be filtered out here, so
    anything else in between is an event of another kind."""
    with trio.fail_after(30):
        while True:
            event = dict(json.loads(await ws.get_message()))
            if event["type"] == wanted:
                return event


async def test_channel_thread_and_task_events_reach_a_filtered_client(
    server: ServerHandle, client: httpx.AsyncClient
) -> None:
    async with connect_ws(server.port, "/api/ws?channels=somewhere-else") as ws:
        channel = await create_channel(client, "proj")
        created = await _next(ws, "channel.created")
        assert (created["channel_id"], created["data"]) == ("", {"channel_id": channel})

        made = await client.post("/api/threads", json={"channel_id": channel, "name": "t"})
        thread = made.json()["thread_id"]
        thread_created = await _next(ws, "channel.created")
        assert (thread_created["channel_id"], thread_created["data"]) == (
            channel,
            {"channel_id": thread},
        )

        body = {"channel_id": channel, "schedule": "1h", "type": "interval", "prompt": "p"}
        task_id = (await client.post("/api/tasks", json=body)).json()["id"]
        task_created = await _next(ws, "task.created")
        assert task_created["channel_id"] == channel
        assert task_created["data"] == {"task_id": task_id, "channel_id": channel}

        assert (await client.patch(f"/api/tasks/{task_id}", json={"enabled": False})).is_success
        assert (await _next(ws, "task.updated"))["data"] == {
            "task_id": task_id,
            "channel_id": channel,
        }
        assert (await client.patch(f"/api/tasks/{task_id}", json={"prompt": "q"})).is_success
        assert (await _next(ws, "task.updated"))["data"]["task_id"] == task_id

        run_id = (await client.post(f"/api/tasks/{task_id}/run")).json()["run_id"]
        completed = await _next(ws, "task.run_completed")
        assert completed["channel_id"] == channel
        assert completed["data"] == {
            "task_id": task_id,
            "run_id": run_id,
            "status": "success",
            "channel_id": channel,
        }

        assert (await client.delete(f"/api/tasks/{task_id}")).status_code == 204
        assert (await _next(ws, "task.deleted"))["data"] == {
            "task_id": task_id,
            "channel_id": channel,
        }

        assert (await client.delete(f"/api/threads/{thread}")).status_code == 204
        thread_deleted = await _next(ws, "channel.deleted")
        assert (thread_deleted["channel_id"], thread_deleted["data"]) == (thread, None)

        assert (await client.delete(f"/api/channels/{channel}")).status_code == 204
        deleted = await _next(ws, "channel.deleted")
        assert (deleted["channel_id"], deleted["data"]) == (channel, None)


async def test_refused_requests_publish_nothing(
    server: ServerHandle, client: httpx.AsyncClient
) -> None:
    channel = await create_channel(client, "proj")
    async with connect_ws(server.port, "/api/ws?hello=1") as ws:
        hello = json.loads(await ws.get_message())
        bad = {"channel_id": channel, "schedule": "x", "type": "cron", "prompt": "p"}
        assert (await client.post("/api/tasks", json=bad)).status_code == 400
        assert (await client.delete("/api/tasks/999")).status_code == 404
        assert (await client.delete("/api/channels/nope")).status_code == 404
        # The next event published is this one: nothing came from the refused requests.
        await create_channel(client, "marker")
        marker = json.loads(await ws.get_message())
        assert (marker["type"], marker["seq"]) == ("channel.created", hello["seq"] + 1)


async def test_global_events_are_replayed_to_filtered_clients(
    server: ServerHandle, client: httpx.AsyncClient
) -> None:
    async with connect_ws(server.port, "/api/ws?hello=1") as ws:
        start = json.loads(await ws.get_message())["seq"]
    channel = await create_channel(client, "proj")
    path = f"/api/ws?channels=elsewhere&since={start}"
    async with connect_ws(server.port, path) as ws:
        replayed = json.loads(await ws.get_message())
    assert (replayed["type"], replayed["data"]) == ("channel.created", {"channel_id": channel})


def test_hub_delivers_global_events_past_every_filter() -> None:
    hub = EventsHub(clock_ms=lambda: 0)
    filtered = hub.register(["a"])
    everything = hub.register()
    hub.broadcast_agent_status("b", "running")  # a channel event of another channel
    hub.broadcast_channel_deleted("b")
    got_filtered = [e.type for e in filtered.receive_batch_nowait()]
    got_all = [e.type for e in everything.receive_batch_nowait()]
    assert got_filtered == ["channel.deleted"]
    assert got_all == ["agent.status", "channel.deleted"]
    [deleted] = [e for e in hub._history if e.type == "channel.deleted"]
    assert deleted.payload == (
        b'{"type":"channel.deleted","channel_id":"b","data":null,"timestamp":0,"seq":2}'
    )


def test_only_our_containers_docker_actions_become_statuses() -> None:
    ours = {APP_LABEL: APP_VALUE, CHANNEL_LABEL: "c1", "name": "loop-x-1a2b3c"}

    def event(action: str, **attributes: str) -> dict[str, Any]:
        return {
            "Type": "container",
            "Action": action,
            "Actor": {"ID": "abc", "Attributes": attributes},
        }

    assert status_change(event("start", **ours)) == (
        "abc",
        "c1",
        "agent",
        "running",
        "loop-x-1a2b3c",
    )
    shell = {**ours, ROLE_LABEL: "shell"}
    assert status_change(event("die", **shell)) == (
        "abc",
        "c1",
        "shell",
        "stopped",
        "loop-x-1a2b3c",
    )
    assert status_change(event("destroy", **ours))[3] == "removed"  # type: ignore[index]
    assert status_change(event("exec_start", **ours)) is None
    assert status_change(event("start", name="someone-elses")) is None
    assert status_change({**event("start", **ours), "Type": "network"}) is None


@pytest.mark.docker
async def test_container_status_changes_come_from_the_engine(
    server: ServerHandle, docker_containers: Containers, docker_client: docker.DockerClient
) -> None:
    """A container of a channel, however it was made, is seen running, stopped and removed."""
    with trio.fail_after(30):
        await server.services.container_watcher.wait_watching()
    async with connect_ws(server.port, "/api/ws?channels=none-of-these") as ws:
        labels = {APP_LABEL: APP_VALUE, CHANNEL_LABEL: "watched"}
        container = await trio.to_thread.run_sync(
            lambda: docker_containers.start(["sleep", "60"], labels=labels)
        )
        statuses: list[str] = []
        for expected in ("running", "stopped", "removed"):
            if expected == "stopped":
                await trio.to_thread.run_sync(lambda: container.kill())
            if expected == "removed":
                await trio.to_thread.run_sync(lambda: container.remove(force=True))
            event = await _next(ws, "container.status_changed")
            assert event["channel_id"] == ""
            data = event["data"]
            assert (data["container_id"], data["channel_id"], data["type"]) == (
                container.id,
                "watched",
                "agent",
            )
            assert data["container_name"] == container.name
            statuses.append(data["status"])
        assert statuses == ["running", "stopped", "removed"]
