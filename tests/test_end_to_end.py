"""The whole path, as a client written for upstream Loop sees it: REST over loopback, events
over /api/ws, agent runs in real containers (the claude stub), a real SQLite file."""

from __future__ import annotations

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection

from loop_server.runtime import ServerHandle
from tests.conftest import create_channel, events_until

# Every test here runs agents in containers of the test image.
pytestmark = pytest.mark.usefixtures("loop_test_image")


async def test_message_to_reply_over_the_wire(
    client: httpx.AsyncClient, events: WebSocketConnection
) -> None:
    channel_id = await create_channel(client, "e2e")
    posted = await client.post(
        "/api/messages", json={"channel_id": channel_id, "content": "STUB:TURNS=2 hi"}
    )
    assert posted.status_code == 204
    seen = await events_until(events, channel_id, "completed")
    kinds = [(e["type"], e["data"].get("status")) for e in seen]
    # A queued message.streaming is replaced by a newer one (SPEC A.3): the two turns may
    # arrive as one or two events, the last carrying the last turn's text.
    streamed = [e for e in seen if e["type"] == "message.streaming"]
    assert 1 <= len(streamed) <= 2
    assert streamed[-1]["data"] == {"content": "Working on: user: STUB:TURNS=2 hi\n (2/2)"}
    assert [k for k in kinds if k[0] != "message.streaming"] == [
        ("message.created", None),
        ("agent.status", "running"),
        ("agent.activity", None),  # the model is asked
        ("message.created", None),
        ("agent.status", "completed"),
    ]
    assert kinds[3][0] == "message.streaming"  # streaming comes between running and the reply
    user, bot = seen[0], seen[-2]
    assert user["data"]["is_bot"] is False
    assert user["data"]["author_id"] == "local-user"
    assert user["data"]["content"] == "STUB:TURNS=2 hi"
    assert bot["data"]["is_bot"] is True
    assert bot["data"]["author_id"] == "loop-bot"
    assert bot["data"]["content"] == "Done: user: STUB:TURNS=2 hi\n"
    assert set(user) >= {"type", "channel_id", "data", "timestamp", "seq"}
    assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)
    history = (await client.get(f"/api/channels/{channel_id}/messages")).json()["messages"]
    assert [m["content"] for m in history] == [bot["data"]["content"], "STUB:TURNS=2 hi"]
    assert [m["msg_id"] for m in history] == [bot["data"]["msg_id"], user["data"]["msg_id"]]
    listing = (await client.get("/api/channels")).json()
    assert listing[0]["agent_running"] is False


async def test_agent_running_shows_in_listing_until_stopped(
    client: httpx.AsyncClient, events: WebSocketConnection, server: ServerHandle
) -> None:
    channel_id = await create_channel(client, "hang")
    await client.post("/api/messages", json={"channel_id": channel_id, "content": "STUB:HANG"})
    await events_until(events, channel_id, "running")
    with trio.fail_after(30):
        while True:
            [item] = (await client.get("/api/channels")).json()
            if item["container_running"]:
                break
            await trio.sleep(0.05)  # polls Docker, which we do not control
    assert item["agent_running"] is True
    assert server.services.orchestrator.stop(channel_id) is True
    stopped = await events_until(events, channel_id, "error")
    assert stopped[-1]["data"] == {"status": "error", "error": "stopped"}
    [item] = (await client.get("/api/channels")).json()
    assert (item["agent_running"], item["container_running"]) == (False, False)


async def test_health_reports_event_subscribers(
    client: httpx.AsyncClient, events: WebSocketConnection
) -> None:
    health = (await client.get("/api/health")).json()
    assert health["status"] == "ok"
    assert health["events"]["subscribers"] == 1
