"""Agent runs with the real ``claude`` binary in the real agent image (see conftest.py).

Every behaviour the runner relies on is checked here against the real CLI: the stream-json
shapes, resume and fork of sessions, a session that cannot be resumed, prompts of any text,
API errors, a crash, stop and the container timeout.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection

from loop_server.agent_image import CLAUDE_CODE_VERSION
from loop_server.runtime import ServerHandle
from tests.agent_real.conftest import FAKE_KEY, FakeApi
from tests.conftest import create_channel, events_until
from tests.fakes.anthropic_api import Reply, ToolCall, error


async def post(client: httpx.AsyncClient, channel_id: str, content: str) -> None:
    response = await client.post(
        "/api/messages", json={"channel_id": channel_id, "content": content}
    )
    assert response.status_code == 204, response.text


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == kind]


def bot_replies(events: list[dict[str, Any]]) -> list[str]:
    return [d["content"] for d in of_type(events, "message.created") if d["is_bot"]]


def last_user_text(api: FakeApi) -> str:
    """The newest user turn of the newest main request (what the CLI sent as the prompt)."""
    messages = api.fake.main_requests[-1].body["messages"]
    user = [m for m in messages if m["role"] == "user"][-1]
    content = user["content"]
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")


async def test_plain_answer_streams_once_and_is_posted(
    client: httpx.AsyncClient,
    events: WebSocketConnection,
    fake_api: FakeApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    fake_api.fake.add(Reply(text="Hello from the model"))
    channel = await create_channel(client, "plain")
    await post(client, channel, "say hello")
    seen = await events_until(events, channel, "completed")
    kinds = [e["type"] for e in seen]
    assert kinds[:2] == ["message.created", "agent.status"]
    assert kinds[-2:] == ["message.created", "agent.status"]
    # The answer is streamed exactly once, then posted.
    assert of_type(seen, "message.streaming") == [{"content": "Hello from the model"}]
    assert bot_replies(seen) == ["Hello from the model"]
    [activity, *_] = of_type(seen, "agent.activity")
    assert activity["activity"] == "model" and activity["model"]
    [request] = fake_api.fake.main_requests
    assert request.headers["x-api-key"] == FAKE_KEY
    assert request.body["stream"] is True
    assert "user: say hello" in last_user_text(fake_api)
    assert FAKE_KEY not in caplog.text  # the key reached the container, never the log


async def test_health_shows_the_agent_image(client: httpx.AsyncClient) -> None:
    with trio.fail_after(30):
        while True:
            details = (await client.get("/api/health")).json()["agent_image"]
            if details["state"] != "unknown":
                break
            await trio.sleep(0.05)  # the start-up check runs in the background
    assert details["state"] == "ok", details
    assert details["claude_code_version"] == CLAUDE_CODE_VERSION


async def test_bash_tool_call_between_turns(
    client: httpx.AsyncClient,
    events: WebSocketConnection,
    fake_api: FakeApi,
    server: ServerHandle,
) -> None:
    command = "echo made-by-claude > proof.txt && id -u"
    fake_api.fake.add(
        Reply(text="Let me write it.", tools=(ToolCall("Bash", {"command": command}),)),
        Reply(text="Wrote proof.txt."),
    )
    channel = await create_channel(client, "tools")
    await post(client, channel, "write a proof file")
    seen = await events_until(events, channel, "completed")
    [tool] = of_type(seen, "tool.use")
    assert tool["tool_name"] == "Bash" and tool["input"] == command
    assert tool["tool_use_id"].startswith("toolu_")
    assert [d["content"] for d in of_type(seen, "message.streaming")] == [
        "Let me write it.",
        "Wrote proof.txt.",
    ]
    assert bot_replies(seen) == ["Wrote proof.txt."]
    # The tool really ran in the work dir, as this server's user.
    work_dir = Path(server.config.data_dir) / channel / "work"
    proof = work_dir / "proof.txt"
    assert proof.read_text() == "made-by-claude\n"
    assert (proof.stat().st_uid, proof.stat().st_gid) == (os.getuid(), os.getgid())
    # The second model call carried the tool's output back.
    first, second = fake_api.fake.main_requests
    assert str(os.getuid()) in "\n".join(second.texts())
    assert len(second.body["messages"]) > len(first.body["messages"])


async def test_next_message_resumes_the_session(
    client: httpx.AsyncClient, events: WebSocketConnection, fake_api: FakeApi
) -> None:
    fake_api.fake.add(Reply(text="first answer"), Reply(text="second answer"))
    channel = await create_channel(client, "resume")
    await post(client, channel, "first question")
    await events_until(events, channel, "completed")
    await post(client, channel, "second question")
    seen = await events_until(events, channel, "completed")
    assert bot_replies(seen) == ["second answer"]
    texts = "\n".join(fake_api.fake.main_requests[-1].texts())
    # The fake API sees the earlier turns: the CLI resumed the session from its state dir.
    assert "first question" in texts and "first answer" in texts
    # With a session only the new message is sent, not the history again.
    assert last_user_text(fake_api).strip() == "local-user: second question"


async def test_thread_first_message_forks_the_parent_session(
    client: httpx.AsyncClient,
    events: WebSocketConnection,
    fake_api: FakeApi,
    server: ServerHandle,
) -> None:
    fake_api.fake.add(Reply(text="parent answer"), Reply(text="thread answer"))
    parent = await create_channel(client, "parent")
    await post(client, parent, "parent question")
    await events_until(events, parent, "completed")
    created = await client.post("/api/threads", json={"channel_id": parent, "name": "side"})
    assert created.status_code == 201, created.text
    thread = created.json()["thread_id"]
    await post(client, thread, "thread question")
    seen = await events_until(events, thread, "completed")
    assert bot_replies(seen) == ["thread answer"]
    assert "parent answer" in "\n".join(fake_api.fake.main_requests[-1].texts())
    channels = server.store.channels
    parent_row, thread_row = await channels.get(parent), await channels.get(thread)
    assert parent_row is not None and thread_row is not None
    assert thread_row.session_id and thread_row.session_id != parent_row.session_id


async def test_unresumable_session_is_replaced_and_the_message_answered(
    client: httpx.AsyncClient,
    events: WebSocketConnection,
    fake_api: FakeApi,
    server: ServerHandle,
) -> None:
    fake_api.fake.add(Reply(text="fresh answer"))
    channel = await create_channel(client, "lost")
    lost = str(uuid.uuid4())
    await server.store.channels.set_session_id(channel, lost, datetime.now(UTC))
    await post(client, channel, "are you there")
    seen = await events_until(events, channel, "completed")
    assert bot_replies(seen) == ["fresh answer"]
    # The retry started over with the history as context.
    assert "user: are you there" in last_user_text(fake_api)
    row = await server.store.channels.get(channel)
    assert row is not None and row.session_id not in ("", lost)


ODD_PROMPTS = {
    "spaces": "   ",
    "dash": "-h --version",
    "double-dash": "--resume nothing",
    "multi-line": "line one\nline two\n\n  indented",
    "unicode": "héllo ✓ 日本語 🙂 \u202e",
    "very-long": "long " * 60_000,  # 300 kB: more than one argv string may hold (128 KiB)
}


@pytest.mark.parametrize("name", sorted(ODD_PROMPTS))
async def test_any_prompt_text_reaches_the_model_verbatim(
    name: str, client: httpx.AsyncClient, events: WebSocketConnection, fake_api: FakeApi
) -> None:
    content = ODD_PROMPTS[name]
    fake_api.fake.add(Reply(text=f"got {name}"))
    channel = await create_channel(client, f"odd-{name}")
    await post(client, channel, content)
    seen = await events_until(events, channel, "completed")
    assert bot_replies(seen) == [f"got {name}"]
    assert f"user: {content}" in last_user_text(fake_api)


async def test_empty_prompt_is_refused_and_nothing_runs(
    client: httpx.AsyncClient, fake_api: FakeApi
) -> None:
    channel = await create_channel(client, "empty")
    response = await client.post("/api/messages", json={"channel_id": channel, "content": ""})
    assert response.status_code == 400
    assert response.text.strip() == "content is required"
    assert fake_api.fake.requests == []


async def api_error_reaches_user(
    client: httpx.AsyncClient, events: WebSocketConnection, name: str
) -> tuple[list[dict[str, Any]], float]:
    channel = await create_channel(client, name)
    started = trio.current_time()
    await post(client, channel, "hello?")
    seen = await events_until(events, channel, "error")
    return seen, trio.current_time() - started


async def test_bad_key_401_fails_at_once_with_the_reason(
    client: httpx.AsyncClient, events: WebSocketConnection, fake_api: FakeApi
) -> None:
    fake_api.fake.fallback = error(401, "authentication_error", "invalid x-api-key")
    seen, _ = await api_error_reaches_user(client, events, "bad-key")
    status = of_type(seen, "agent.status")[-1]
    assert status["error"].startswith("Claude API error 401 authentication_failed:")
    assert bot_replies(seen) == [f"⚠️ Agent run failed: {status['error']}"]
    # At the first failed call, not after the CLI's ten retries.
    assert len(fake_api.fake.main_requests) == 1


async def test_overloaded_529_is_shown_while_retrying_then_answered(
    client: httpx.AsyncClient, events: WebSocketConnection, fake_api: FakeApi
) -> None:
    fake_api.fake.add(error(529, "overloaded_error", "Overloaded"), Reply(text="back again"))
    channel = await create_channel(client, "overloaded")
    await post(client, channel, "hello?")
    seen = await events_until(events, channel, "completed")
    retries = [d for d in of_type(seen, "agent.activity") if d["activity"] == "api_retry"]
    assert len(retries) == 1
    assert retries[0]["description"].startswith("API error 529 (overloaded); retrying in ")
    assert bot_replies(seen) == ["back again"]


async def test_bad_request_400_reports_the_api_message(
    client: httpx.AsyncClient, events: WebSocketConnection, fake_api: FakeApi
) -> None:
    message = "messages.0.content: unexpected block type"
    fake_api.fake.fallback = error(400, "invalid_request_error", message)
    seen, _ = await api_error_reaches_user(client, events, "bad-request")
    status = of_type(seen, "agent.status")[-1]
    assert message in status["error"]
    assert "400" in status["error"]


async def test_cli_crash_is_reported(
    client: httpx.AsyncClient, events: WebSocketConnection, fake_api: FakeApi
) -> None:
    # The model's Bash call kills the CLI itself (its parent process): a crash mid-run.
    fake_api.fake.add(Reply(tools=(ToolCall("Bash", {"command": "kill -9 $PPID"}),)))
    seen, _ = await api_error_reaches_user(client, events, "crash")
    status = of_type(seen, "agent.status")[-1]
    assert status["error"].startswith("agent exited with code ")
    assert bot_replies(seen) == [f"⚠️ Agent run failed: {status['error']}"]


async def test_stop_cancels_a_run_waiting_on_the_model(
    client: httpx.AsyncClient,
    events: WebSocketConnection,
    fake_api: FakeApi,
    server: ServerHandle,
) -> None:
    fake_api.fake.add(Reply(hang=True))
    channel = await create_channel(client, "stop")
    await post(client, channel, "take your time")
    with trio.fail_after(60):
        await fake_api.fake.wait_main_requests(1)
    assert server.services.orchestrator.stop(channel) is True
    seen = await events_until(events, channel, "error")
    assert of_type(seen, "agent.status")[-1] == {"status": "error", "error": "stopped"}
    assert bot_replies(seen) == ["Run stopped."]


async def test_container_timeout_ends_the_run(
    tmp_path: Path, holder: Any, fake_api: FakeApi, nursery: trio.Nursery
) -> None:
    from functools import partial

    from loop_server.runtime import run_server
    from tests.agent_real.conftest import real_config
    from tests.events.events_helpers import connect_ws

    config = real_config(tmp_path, holder, fake_api, container_timeout=3)
    handle: ServerHandle = await nursery.start(partial(run_server, config))
    fake_api.fake.add(Reply(hang=True))
    try:
        async with (
            httpx.AsyncClient(base_url=handle.url, timeout=10) as http,
            connect_ws(handle.port, "/api/ws") as ws,
        ):
            channel = await create_channel(http, "timeout")
            await post(http, channel, "never answered")
            seen = await events_until(ws, channel, "error")
        assert of_type(seen, "agent.status")[-1]["error"] == "agent timed out after 3s"
    finally:
        handle.shutdown()


async def test_configured_model_reaches_the_api(
    tmp_path: Path, holder: Any, fake_api: FakeApi, nursery: trio.Nursery
) -> None:
    from functools import partial

    from loop_server.runtime import run_server
    from tests.agent_real.conftest import real_config
    from tests.events.events_helpers import connect_ws

    config = real_config(tmp_path, holder, fake_api, claude_model="claude-sonnet-4-5")
    handle: ServerHandle = await nursery.start(partial(run_server, config))
    fake_api.fake.add(Reply(text="from the configured model"))
    try:
        async with (
            httpx.AsyncClient(base_url=handle.url, timeout=10) as http,
            connect_ws(handle.port, "/api/ws") as ws,
        ):
            channel = await create_channel(http, "model")
            await post(http, channel, "which model?")
            seen = await events_until(ws, channel, "completed")
        assert bot_replies(seen) == ["from the configured model"]
        assert fake_api.fake.main_requests[-1].body["model"] == "claude-sonnet-4-5"
        assert of_type(seen, "agent.activity")[0]["model"] == "claude-sonnet-4-5"
    finally:
        handle.shutdown()
