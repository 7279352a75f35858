"""Every tool of ``loop-server mcp`` through a real MCP session against a real server, as an
agent in a channel container uses it: over the unix socket, with the channel's scoped token.
Replies are upstream's texts; bad arguments get the tool's error text and the bridge lives on.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from loop_server.runtime import ServerHandle
from tests.bridge.conftest import agent_bridge, bridge, call, ok, refused, text_of
from tests.conftest import create_channel

FORBIDDEN = "API error (status 403): forbidden: token is scoped to channel {}\n"


async def test_tools_list_upstreams_names_and_parameters(
    server: ServerHandle, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    channel_id = await create_channel(client, "tools")
    async with agent_bridge(server, channel_id, tmp_path) as session:
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
    parameters = {
        name: (sorted(tool.input_schema.get("properties", {})), tool.input_schema.get("required"))
        for name, tool in listed.items()
    }
    assert parameters == {
        "schedule_task": (
            ["auto_delete_sec", "prompt", "schedule", "type"],
            ["schedule", "type", "prompt"],
        ),
        "list_tasks": ([], None),
        "show_task": (["task_id"], ["task_id"]),
        "cancel_task": (["task_id"], ["task_id"]),
        "toggle_task": (["enabled", "task_id"], ["task_id", "enabled"]),
        "edit_task": (["auto_delete_sec", "prompt", "schedule", "task_id", "type"], ["task_id"]),
        "create_channel": (["name"], ["name"]),
        "create_thread": (["message", "name"], ["name"]),
        "delete_thread": (["thread_id"], ["thread_id"]),
        "search_channels": (["query"], None),
        "send_message": (["channel_id", "content"], ["channel_id", "content"]),
        "get_readme": ([], None),
        "search_memory": (["query", "top_k"], ["query"]),
        "index_memory": ([], None),
    }
    assert listed["cancel_task"].description == "Cancel a scheduled task by its ID."


async def test_task_tools_schedule_list_show_toggle_edit_cancel(
    server: ServerHandle, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    channel_id = await create_channel(client, "tasks")
    async with agent_bridge(server, channel_id, tmp_path) as session:
        assert await ok(session, "list_tasks") == "No scheduled tasks."
        created = await ok(
            session,
            "schedule_task",
            schedule="1h",
            type="interval",
            prompt="check the build\nand report",
            auto_delete_sec=30,
        )
        listed = (await client.get("/api/tasks", params={"channel_id": channel_id})).json()
        assert len(listed) == 1
        task = listed[0]
        task_id = task["id"]
        assert created == f"Task scheduled successfully (ID: {task_id})."
        assert (task["schedule"], task["type"], task["auto_delete_sec"]) == ("1h", "interval", 30)
        later = await ok(
            session, "schedule_task", schedule="2099-01-02T03:04:05Z", type="once", prompt="x"
        )
        later_id = int(later.removeprefix("Task scheduled successfully (ID: ").rstrip(")."))

        assert await ok(session, "list_tasks") == (
            f"- ID {task_id}: check the build and report (schedule: 1h, type: interval, "
            "enabled: true, auto_delete: 30s)\n"
            f"- ID {later_id}: x (schedule: 2099-01-02T03:04:05Z, type: once, enabled: true)\n"
        )
        assert await ok(session, "show_task", task_id=task_id) == (
            f"Task {task_id}\nType: interval\nSchedule: 1h\nStatus: enabled\n"
            f"Next run: {task['next_run_at']}\nAuto-delete: 30s\n\n"
            "Prompt:\ncheck the build\nand report"
        )

        assert await ok(session, "toggle_task", task_id=task_id, enabled=False) == (
            f"Task {task_id} disabled."
        )
        assert (await client.get(f"/api/tasks/{task_id}")).json()["enabled"] is False
        assert await ok(session, "toggle_task", task_id=task_id, enabled=True) == (
            f"Task {task_id} enabled."
        )

        assert await ok(session, "edit_task", task_id=task_id, prompt="only the build") == (
            f"Task {task_id} updated successfully."
        )
        edited = (await client.get(f"/api/tasks/{task_id}")).json()
        assert (edited["prompt"], edited["schedule"]) == ("only the build", "1h")

        assert await ok(session, "cancel_task", task_id=task_id) == (
            f"Task {task_id} cancelled successfully."
        )
        assert (await client.get(f"/api/tasks/{task_id}")).status_code == 404
        assert await refused(session, "show_task", task_id=task_id) == (
            "API error (status 404): task not found\n"
        )


async def test_bad_task_arguments_get_the_tools_error_texts(
    server: ServerHandle, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    channel_id = await create_channel(client, "bad-args")
    async with agent_bridge(server, channel_id, tmp_path) as session:
        text = await refused(
            session, "schedule_task", schedule="5 minutes", type="interval", prompt="p"
        )
        assert text.startswith(
            'invalid schedule for type "interval": must be a valid Go time.Duration '
            "(e.g. 5m, 1h, 24h): time: "
        )
        assert '"5 minutes"' in text
        text = await refused(session, "schedule_task", schedule="tomorrow", type="once", prompt="p")
        assert text.startswith(
            'invalid schedule for type "once": must be RFC3339 (e.g. 2026-02-09T14:30:00Z): '
            'parsing time "tomorrow"'
        )
        text = await refused(
            session, "schedule_task", schedule="61 * * * *", type="cron", prompt="p"
        )
        assert text.startswith("API error (status 400): calculating next run: ")
        text = await refused(session, "schedule_task", schedule="1h", type="weekly", prompt="p")
        assert text.startswith("API error (status 400): ")
        assert "weekly" in text
        # Wrong types and missing parameters: the SDK's validation error, as an error result.
        text = await refused(session, "show_task", task_id="abc")
        assert "task_id" in text
        text = await refused(session, "schedule_task", schedule="1h", type="interval")
        assert "prompt" in text
        assert await refused(session, "show_task", task_id=2**70) == (
            "API error (status 400): invalid task id\n"
        )
        assert await refused(session, "edit_task", task_id=1) == (
            "at least one of schedule, type, prompt, or auto_delete_sec is required"
        )
        text = await refused(session, "edit_task", task_id=1, schedule="never", type="once")
        assert text.startswith('invalid schedule for type "once": must be RFC3339')
        # Nothing was stored, and the bridge still answers.
        assert (await client.get("/api/tasks", params={"channel_id": channel_id})).json() == []
        assert await ok(session, "list_tasks") == "No scheduled tasks."


async def test_thread_message_channel_and_readme_tools(
    server: ServerHandle, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    channel_id = await create_channel(client, "home")
    other_id = await create_channel(client, "elsewhere")
    other_thread = (
        await client.post("/api/threads", json={"channel_id": other_id, "name": "theirs"})
    ).json()["thread_id"]
    async with agent_bridge(server, channel_id, tmp_path) as session:
        created = await ok(session, "create_thread", name="research")
        thread_id = created.removeprefix("Thread created successfully (ID: ").rstrip(").")
        listing = {c["channel_id"]: c for c in (await client.get("/api/channels")).json()}
        assert listing[thread_id]["parent_id"] == channel_id
        assert listing[thread_id]["name"] == "research"
        assert await refused(session, "create_thread", name="") == "name is required"

        # The agent's listing holds its own channel and threads only.
        found = await ok(session, "search_channels")
        home, thread = listing[channel_id], listing[thread_id]
        assert found == (
            f"- home [channel] (ID: {channel_id}, dir: {home['dir_path']}, active: true)\n"
            f"- research [thread] (ID: {thread_id}, dir: {thread['dir_path']}, active: true)\n"
        )
        assert await ok(session, "search_channels", query="RESEARCH") == found.splitlines(True)[1]
        assert await ok(session, "search_channels", query="elsewhere") == "No channels found."

        assert await ok(session, "send_message", channel_id=thread_id, content="hello") == (
            "Message sent successfully."
        )
        history = (await client.get(f"/api/channels/{thread_id}/messages")).json()
        assert [m["content"] for m in history["messages"] if not m["is_bot"]] == ["hello"]
        assert await refused(session, "send_message", channel_id="", content="x") == (
            "channel_id is required"
        )
        assert await refused(session, "send_message", channel_id=channel_id, content="") == (
            "content is required"
        )
        assert await refused(session, "send_message", channel_id=other_id, content="hi") == (
            FORBIDDEN.format(channel_id)
        )
        other_history = (await client.get(f"/api/channels/{other_id}/messages")).json()
        assert other_history["messages"] == []

        assert await refused(session, "delete_thread", thread_id=other_thread) == (
            FORBIDDEN.format(channel_id)
        )
        assert await refused(session, "delete_thread", thread_id="") == "thread_id is required"
        assert await ok(session, "delete_thread", thread_id=thread_id) == (
            f"Thread {thread_id} deleted successfully."
        )
        listing = {c["channel_id"] for c in (await client.get("/api/channels")).json()}
        assert thread_id not in listing
        assert other_thread in listing

        # A new channel is outside any channel's scope.
        assert await refused(session, "create_channel", name="mine") == (
            FORBIDDEN.format(channel_id)
        )
        assert await refused(session, "create_channel", name="") == "name is required"

        readme = (await client.get("/api/readme")).text
        assert await ok(session, "get_readme") == readme


async def test_tools_on_another_channels_task_are_refused(
    server: ServerHandle, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    channel_id = await create_channel(client, "mine")
    other_id = await create_channel(client, "theirs")
    created = await client.post(
        "/api/tasks",
        json={"channel_id": other_id, "schedule": "1h", "type": "interval", "prompt": "theirs"},
    )
    task_id = created.json()["id"]
    before = (await client.get(f"/api/tasks/{task_id}")).json()
    forbidden = FORBIDDEN.format(channel_id)
    async with agent_bridge(server, channel_id, tmp_path) as session:
        assert await refused(session, "show_task", task_id=task_id) == forbidden
        assert await refused(session, "cancel_task", task_id=task_id) == forbidden
        assert await refused(session, "toggle_task", task_id=task_id, enabled=False) == forbidden
        assert await refused(session, "edit_task", task_id=task_id, prompt="mine") == forbidden
    assert (await client.get(f"/api/tasks/{task_id}")).json() == before


async def test_memory_tools_search_the_channels_notes_and_nothing_outside(
    server: ServerHandle, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "notes").mkdir(parents=True)
    (project / "notes" / "deploy.md").write_text("The deploy key rotates every Friday.\n")
    host_dir = tmp_path / "host-secrets"
    host_dir.mkdir()
    (host_dir / "passwords.md").write_text("The root password is hunter2.\n")
    # The agent points its project config at a host dir outside its mount.
    (project / ".loop").mkdir()
    (project / ".loop" / "config.json").write_text(
        json.dumps({"memory": {"paths": ["notes", str(host_dir), "../host-secrets"]}})
    )
    channel_id = (await client.post("/api/channels", json={"dir_path": str(project)})).json()[
        "channel_id"
    ]
    async with agent_bridge(server, channel_id, tmp_path) as session:
        assert await ok(session, "index_memory") == "Indexed 1 chunks."
        found = await ok(session, "search_memory", query="deploy key")
        assert found.startswith("## Result 1 (score: ")
        assert f"**File:** {project / 'notes' / 'deploy.md'}\n" in found
        assert "\nThe deploy key rotates every Friday.\n" in found
        assert await ok(session, "search_memory", query="hunter2") == "No results found."
        assert await ok(session, "search_memory", query="password", top_k=0) == (
            "No results found."
        )
        assert await refused(session, "search_memory", query="") == "query is required"
        assert await ok(session, "index_memory") == "Indexed 0 chunks."


async def test_the_owner_uses_the_bridge_over_tcp(
    server: ServerHandle, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # As from a Claude Code on the host (`claude mcp add ...`): no token on loopback TCP.
    channel_id = await create_channel(client, "host")
    async with bridge(channel_id, "--api-url", server.url, log_dir=tmp_path) as session:
        created = await ok(session, "create_channel", name="from-host")
        new_id = created.removeprefix("Channel created successfully (ID: ").rstrip(").")
        names = {c["channel_id"]: c["name"] for c in (await client.get("/api/channels")).json()}
        assert names[new_id] == "from-host"
        assert "from-host" in await ok(session, "search_channels")


async def test_an_unreachable_or_refusing_api_is_an_error_result_not_a_crash(
    server: ServerHandle, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    channel_id = await create_channel(client, "lost")
    missing = str(tmp_path / "no-such.sock")
    async with bridge(channel_id, "--socket", missing, log_dir=tmp_path) as session:
        result = await call(session, "list_tasks")
        assert result.is_error
        assert text_of(result).startswith("calling API: ")
        assert (await call(session, "get_readme")).is_error  # still there, still answering
    # No token on the agent socket: nobody.
    socket = str(server.config.socket_path)
    async with bridge(channel_id, "--socket", socket, log_dir=tmp_path) as session:
        assert await refused(session, "list_tasks") == "API error (status 401): unauthorized\n"
