"""Scheduled tasks on the real server: the poll loop, the agent runner in a container (the
claude stub), run logs, and each run's answer in a thread of its own (🧵) that expires (💨)
when the agent says ``[EPHEMERAL]`` and the task has ``auto_delete_sec``; over REST and
/api/ws."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection

from loop_server.config import Config
from loop_server.runtime import ServerHandle
from tests.conftest import create_channel, events_until, next_event

# Every test here runs agents in containers of the test image.
pytestmark = pytest.mark.usefixtures("loop_test_image")


@pytest.fixture
def config(config: Config) -> Config:
    return replace(config, poll_interval=0.2)


async def _run_thread(events: WebSocketConnection, channel_id: str) -> str:
    """The id of the next thread made in ``channel_id`` (a run's 🧵)."""
    while True:
        event = await next_event(events)
        if event["type"] == "channel.created" and event["channel_id"] == channel_id:
            return str(event["data"]["channel_id"])


async def _bot_messages(client: httpx.AsyncClient, channel_id: str) -> list[str]:
    history = (await client.get(f"/api/channels/{channel_id}/messages")).json()["messages"]
    return [m["content"] for m in history if m["is_bot"]]


async def _names(client: httpx.AsyncClient) -> dict[str, str]:
    return {c["channel_id"]: c["name"] for c in (await client.get("/api/channels")).json()}


async def test_interval_task_answers_each_run_in_a_thread(
    client: httpx.AsyncClient, events: WebSocketConnection, server: ServerHandle
) -> None:
    channel_id = await create_channel(client, "cron")
    created = await client.post(
        "/api/tasks",
        json={"channel_id": channel_id, "schedule": "1s", "type": "interval", "prompt": "tick"},
    )
    task_id = created.json()["id"]
    threads = []
    for _ in range(2):
        thread = await _run_thread(events, channel_id)
        seen = await events_until(events, thread, "completed")
        assert [e["type"] for e in seen][-2:] == ["message.created", "agent.status"]
        assert seen[-2]["data"]["content"] == "Done: tick"
        threads.append(thread)
    await client.patch(f"/api/tasks/{task_id}", json={"enabled": False})
    with trio.fail_after(30):
        await server.services.scheduler.wait_idle()
    runs = (await client.get(f"/api/tasks/{task_id}/runs")).json()["runs"]
    finished = [r for r in runs if r["status"] != "running"]
    assert len(finished) >= 2
    assert all((r["status"], r["response_text"]) == ("success", "Done: tick") for r in finished)
    names = await _names(client)
    for thread in threads:
        assert names[thread] == f"🧵 task #{task_id} (`1s`) tick"
        assert await _bot_messages(client, thread) == ["Done: tick"]
    assert await _bot_messages(client, channel_id) == []  # the channel itself stays quiet


async def test_once_task_runs_once_and_is_disabled(
    client: httpx.AsyncClient, events: WebSocketConnection, server: ServerHandle
) -> None:
    channel_id = await create_channel(client, "once")
    soon = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = await client.post(
        "/api/tasks",
        json={"channel_id": channel_id, "schedule": soon, "type": "once", "prompt": "only once"},
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    thread = await _run_thread(events, channel_id)
    await events_until(events, thread, "completed")
    with trio.fail_after(30):
        await server.services.scheduler.wait_idle()
    assert (await client.get(f"/api/tasks/{task_id}")).json()["enabled"] is False
    runs = (await client.get(f"/api/tasks/{task_id}/runs")).json()["runs"]
    assert [(r["status"], r["response_text"]) for r in runs] == [("success", "Done: only once")]


async def test_an_ephemeral_answer_expires_and_a_meaningful_one_stays(
    client: httpx.AsyncClient, events: WebSocketConnection, server: ServerHandle
) -> None:
    channel_id = await create_channel(client, "ephemeral")

    async def run(prompt: str) -> tuple[int, str, list[dict[str, Any]]]:
        body = {
            "channel_id": channel_id,
            "schedule": "1h",
            "type": "interval",
            "prompt": prompt,
            "auto_delete_sec": 1,
        }
        task_id = (await client.post("/api/tasks", json=body)).json()["id"]
        assert (await client.post(f"/api/tasks/{task_id}/run")).status_code == 202
        thread = await _run_thread(events, channel_id)
        return task_id, thread, await events_until(events, thread, "completed")

    # The stub echoes its command line: the instruction is passed as a system prompt.
    echo_task, _, _ = await run("STUB:ECHO_ARGS report")
    with trio.fail_after(30):  # the run log is written after agent.status completed
        await server.services.scheduler.wait_idle()
    [echoed] = (await client.get(f"/api/tasks/{echo_task}/runs")).json()["runs"]
    assert (
        "--append-system-prompt If you have nothing meaningful to report, start your"
        in (echoed["response_text"])
    )
    kept_task, kept, _ = await run("report")
    assert await _bot_messages(client, kept) == ["Done: report"]

    # The stub answers "Done: <prompt>": the tag is in it, so the thread expires.
    gone_task, gone, seen = await run("[EPHEMERAL] nothing new")
    assert seen[-2]["type"] == "message.created"
    assert "[EPHEMERAL]" not in seen[-2]["data"]["content"]
    assert (await _names(client))[gone] == f"💨 task #{gone_task} (`1h`) [EPHEMERAL] nothing new"
    with trio.fail_after(30):
        while True:
            event = json.loads(await events.get_message())
            if event["type"] == "channel.deleted" and event["channel_id"] == gone:
                break
    names = await _names(client)
    assert gone not in names
    # The meaningful answer, whose run ended first, is still there.
    assert names[kept] == f"🧵 task #{kept_task} (`1h`) report"
    runs = (await client.get(f"/api/tasks/{gone_task}/runs")).json()["runs"]
    assert [r["response_text"] for r in runs] == ["Done:  nothing new"]
