"""Done means for the MCP bridge: the real Claude Code CLI in the real agent image, driven by
the fake Messages API (see conftest.py: loopback only, in a ``--network none`` holder's
namespace), uses ``loop-server mcp`` over the mounted agent socket with its channel's token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import httpx
import trio

from loop_server.channel_paths import mcp_config_path
from loop_server.runtime import ServerHandle
from tests.agent_real.conftest import FakeApi
from tests.conftest import agents_idle, create_channel
from tests.fakes.anthropic_api import FakeAnthropic, Reply, ToolCall

RUN_DEADLINE = 240


def tool_results(api: FakeAnthropic) -> list[str]:
    """What the CLI sent back to the model as the results of its tool calls, in order."""
    last = api.main_requests[-1].body
    results = []
    for message in last["messages"]:
        for block in message.get("content") or []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                inner = block.get("content")
                if isinstance(inner, list):
                    inner = "".join(b.get("text", "") for b in inner if isinstance(b, dict))
                results.append(str(inner))
    return results


async def test_the_real_cli_acts_through_the_bridge_and_only_for_its_channel(
    server: ServerHandle,
    client: httpx.AsyncClient,
    tmp_path: Path,
    fake_api: FakeApi,
    docker_client: docker.DockerClient,
) -> None:
    api = fake_api.fake
    project = tmp_path / "project"
    await trio.Path(project / "notes").mkdir(parents=True)
    await trio.Path(project / "notes" / "release.md").write_text(
        "Releases ship on Tuesdays after the canary bake.\n"
    )
    await trio.Path(project / ".loop").mkdir()
    await trio.Path(project / ".loop" / "config.json").write_text(
        json.dumps({"memory": {"paths": ["notes"]}})
    )
    channel_id = (await client.post("/api/channels", json={"dir_path": str(project)})).json()[
        "channel_id"
    ]
    other_id = await create_channel(client, "someone-else")
    their_task = (
        await client.post(
            "/api/tasks",
            json={"channel_id": other_id, "schedule": "1h", "type": "interval", "prompt": "x"},
        )
    ).json()["id"]

    def tool(name: str, **arguments: Any) -> Reply:
        return Reply(tools=(ToolCall(f"mcp__loop__{name}", arguments),))

    api.add(
        tool("schedule_task", schedule="0 9 * * *", type="cron", prompt="morning report"),
        tool("search_memory", query="releases ship"),
        tool("send_message", channel_id=other_id, content="hello from the agent"),
        tool("cancel_task", task_id=their_task),
        Reply(text="All done."),
    )
    posted = await client.post(
        "/api/messages", json={"channel_id": channel_id, "content": "do the things"}
    )
    assert posted.status_code == 204
    with trio.fail_after(RUN_DEADLINE):
        await agents_idle(server)

    # The CLI called the bridge's tools in turn (it defers MCP tools behind ToolSearch, but
    # runs a call to one it was not shown, adding a hint after an error).
    results = tool_results(api)
    assert len(results) == 4, results
    tasks = (await client.get("/api/tasks", params={"channel_id": channel_id})).json()
    assert [(t["schedule"], t["prompt"]) for t in tasks] == [("0 9 * * *", "morning report")]
    assert results[0] == f"Task scheduled successfully (ID: {tasks[0]['id']})."
    assert "Releases ship on Tuesdays after the canary bake." in results[1]
    assert f"**File:** {project / 'notes' / 'release.md'}" in results[1]
    forbidden = f"API error (status 403): forbidden: token is scoped to channel {channel_id}\n"
    assert results[2].startswith(forbidden)
    assert results[3].startswith(forbidden)
    # Nothing of the other channel's was touched.
    assert (await client.get(f"/api/channels/{other_id}/messages")).json()["messages"] == []
    assert (await client.get(f"/api/tasks/{their_task}")).status_code == 200
    history = (await client.get(f"/api/channels/{channel_id}/messages")).json()
    assert history["messages"][0]["content"] == "All done."
    # The run's token died with its container.
    assert server.services.agent_tokens.statistics().live_tokens == 0

    # Claude's own account, in its first stream-json line: the server named in the MCP
    # config is "connected" (in the channel's shell container, the one terminals use).
    containers = server.services.containers
    shell = await containers.find_container_by_channel(channel_id, str(project))
    try:
        init = await trio.to_thread.run_sync(
            claude_init_line, docker_client, shell, str(project), channel_id
        )
    finally:
        await containers.container_remove(shell)
    assert [(s["name"], s["status"]) for s in init["mcp_servers"]] == [("loop", "connected")]
    assert "mcp__loop__schedule_task" in init["tools"]


def claude_init_line(
    client: docker.DockerClient, container_id: str, work_dir: str, channel_id: str
) -> dict[str, Any]:
    argv = [
        "claude",
        "--mcp-config",
        mcp_config_path(work_dir, channel_id),
        "--print",
        "--verbose",
        "--output-format",
        "stream-json",
        "--dangerously-skip-permissions",
        "say hello",
    ]
    # An exec skips the image's entrypoint: as root, Claude needs to be told it is sandboxed.
    result = client.containers.get(container_id).exec_run(
        argv, environment={"IS_SANDBOX": "1"}, workdir=work_dir
    )
    for line in result.output.decode(errors="replace").splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("type") == "system" and event.get("subtype") == "init":
                return dict(event)
    raise AssertionError(f"no init line in: {result.output[-2000:]!r}")
