"""Scheduled tasks on the real server: the poll loop, the agent runner in a container (the
claude stub), run logs and bot messages, over REST and /api/ws."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection

from loop_server.config import Config
from loop_server.runtime import ServerHandle
from tests.conftest import create_channel, events_until
from tests.docker.conftest import docker_client, loop_test_image

__all__ = ["docker_client", "loop_test_image"]

# Every test here runs agents in containers of the test image.
pytestmark = pytest.mark.usefixtures("loop_test_image")


@pytest.fixture
def config(config: Config) -> Config:
    return replace(config, poll_interval=0.2)


async def test_interval_task_produces_runs_and_bot_messages(
    client: httpx.AsyncClient, events: WebSocketConnection
) -> None:
    channel_id = await create_channel(client, "cron")
    created = await client.post(
        "/api/tasks",
        json={"channel_id": channel_id, "schedule": "1s", "type": "interval", "prompt": "tick"},
    )
    task_id = created.json()["id"]
    # Two runs, each announced on the channel like a chat run.
    for _ in range(2):
        seen = await events_until(events, channel_id, "completed")
        assert [e["type"] for e in seen][-2:] == ["message.created", "agent.status"]
        assert seen[-2]["data"]["content"] == "Done: tick"
    with trio.fail_after(30):
        while True:
            runs = (await client.get(f"/api/tasks/{task_id}/runs")).json()["runs"]
            finished = [r for r in runs if r["status"] != "running"]
            if len(finished) >= 2:
                break
            await trio.sleep(0.05)  # the run log is written just after the reply
    assert all(r["status"] == "success" for r in finished), finished
    assert all(r["response_text"] == "Done: tick" for r in finished)
    replies = [
        m["content"]
        for m in (await client.get(f"/api/channels/{channel_id}/messages")).json()["messages"]
        if m["is_bot"]
    ]
    assert replies[:2] == ["Done: tick", "Done: tick"]
    task = (await client.get(f"/api/tasks/{task_id}")).json()
    assert task["enabled"] is True


async def test_once_task_runs_once_and_is_disabled(
    client: httpx.AsyncClient, events: WebSocketConnection, server: ServerHandle
) -> None:
    channel_id = await create_channel(client, "once")
    created = await client.post(
        "/api/tasks",
        json={
            "channel_id": channel_id,
            "schedule": "2020-01-01T00:00:00Z",  # in the past: fires on the next poll
            "type": "once",
            "prompt": "only once",
        },
    )
    task_id = created.json()["id"]
    await events_until(events, channel_id, "completed")
    with trio.fail_after(30):
        await server.services["scheduler"].wait_idle()
    assert (await client.get(f"/api/tasks/{task_id}")).json()["enabled"] is False
    runs = (await client.get(f"/api/tasks/{task_id}/runs")).json()["runs"]
    assert [(r["status"], r["response_text"]) for r in runs] == [("success", "Done: only once")]
