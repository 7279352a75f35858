"""A message starts Claude in the channel's container and the answer streams back (SPEC A.5),
on the real Docker engine with the claude stub."""

from __future__ import annotations

import re

import docker
import pytest
import trio

from loop_server.agent import STOPPED_TEXT
from loop_server.clock import SystemClock
from loop_server.containers import CHANNEL_LABEL, DockerEngine
from loop_server.platform.local import LocalPlatform
from loop_server.services.threads import ThreadService
from tests.agent.conftest import Agents, channel_containers


async def test_message_runs_agent_and_streams_back(
    agents: Agents, docker_client: docker.DockerClient
) -> None:
    channel = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(channel, "alice", "STUB:TURNS=2 fix it")
    await agents.recorder.wait_for(channel, "completed")
    events = agents.recorder.of(channel)
    kinds = [k if k != "agent.status" else f"status:{d['status']}" for k, d in events]
    assert kinds == [
        "message.created",
        "status:running",
        "agent.activity",  # the init line: the model is asked
        "message.streaming",
        "message.streaming",
        "message.created",
        "status:completed",
    ]
    assert events[0][1] == {"content": "STUB:TURNS=2 fix it", "is_bot": False}
    assert events[2][1] == {"activity": "model", "model": "claude-stub", "description": ""}
    # Without a session the prompt is the recent history, one "<role>: <content>" line each.
    answer = "Done: user: STUB:TURNS=2 fix it\n"
    assert events[5][1] == {"content": answer, "is_bot": True}
    history = await agents.history(channel)
    assert [(m.author_id, m.content, m.is_bot) for m in history] == [
        ("alice", "STUB:TURNS=2 fix it", False),
        ("loop-bot", answer, True),
    ]
    assert history[1].author_name == "LoopBot"
    stored = await agents.store.channels.get(channel)
    assert stored is not None and stored.session_id != ""
    assert channel_containers(docker_client, channel) == []  # removed after the run
    assert agents.orchestrator.active_chat_channel_ids() == set()


async def test_next_message_resumes_the_session(agents: Agents) -> None:
    channel = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(channel, "u", "first")
    await agents.recorder.wait_for(channel, "completed")
    stored = await agents.store.channels.get(channel)
    assert stored is not None
    session = stored.session_id
    await agents.orchestrator.handle_incoming_message(channel, "u", "STUB:ECHO_ARGS again")
    await agents.recorder.wait_for(channel, "completed", 2)
    reply = (await agents.history(channel))[-1].content
    assert f"--resume {session}" in reply
    assert "--fork-session" not in reply
    # With a session only the new message is sent, as "<author>: <content>".
    assert reply.endswith("u: STUB:ECHO_ARGS again")
    assert "--output-format stream-json" in reply
    assert f"--mcp-config {agents.loop_dir}/{channel}/work/.loop/mcp-{channel}.json" in reply


async def test_first_run_without_session_sends_history(agents: Agents) -> None:
    channel = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(channel, "u", "STUB:ECHO_ARGS hello")
    await agents.recorder.wait_for(channel, "completed")
    reply = (await agents.history(channel))[-1].content
    assert "--resume" not in reply
    assert reply.endswith(" user: STUB:ECHO_ARGS hello\n")


async def test_thread_first_run_forks_the_parent_session(agents: Agents) -> None:
    parent = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(parent, "u", "start")
    await agents.recorder.wait_for(parent, "completed")
    parent_row = await agents.store.channels.get(parent)
    assert parent_row is not None
    threads = ThreadService(agents.store, LocalPlatform(), clock=SystemClock())
    thread = await threads.create_thread(parent, "side quest", "u", "")
    await agents.orchestrator.handle_incoming_message(thread, "u", "STUB:ECHO_ARGS in thread")
    await agents.recorder.wait_for(thread, "completed")
    reply = (await agents.history(thread))[-1].content
    assert f"--resume {parent_row.session_id} --fork-session" in reply
    thread_row = await agents.store.channels.get(thread)
    assert thread_row is not None
    assert thread_row.session_id not in ("", parent_row.session_id)
    # The thread has diverged: its next run resumes its own session without forking.
    await agents.orchestrator.handle_incoming_message(thread, "u", "STUB:ECHO_ARGS again")
    await agents.recorder.wait_for(thread, "completed", 2)
    second = (await agents.history(thread))[-1].content
    assert f"--resume {thread_row.session_id}" in second
    assert "--fork-session" not in second


async def test_one_run_per_channel_and_channels_in_parallel(agents: Agents) -> None:
    busy, other = await agents.new_channel(), await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(busy, "u", "STUB:SLOW one")
    await agents.orchestrator.handle_incoming_message(busy, "u", "STUB:SLOW two")
    await agents.orchestrator.handle_incoming_message(other, "u", "STUB:SLOW three")
    await agents.recorder.wait_for(busy, "completed", 2)
    await agents.recorder.wait_for(other, "completed")
    order = [
        (c, d["status"])
        for k, c, d in agents.recorder.events
        if k == "agent.status" and c in (busy, other)
    ]
    busy_order = [s for c, s in order if c == busy]
    assert busy_order == ["running", "completed", "running", "completed"]  # never overlapping
    # The other channel started before the busy channel's first run ended.
    assert order.index((other, "running")) < order.index((busy, "completed"))
    replies = [m.content for m in await agents.history(busy) if m.is_bot]
    # FIFO. The first run's prompt is the history when it began (the second message may or
    # may not be stored by then); the second run resumes the session the first one started.
    assert len(replies) == 2
    assert replies[0].startswith("Done: user: STUB:SLOW one\n")
    assert replies[1] == "Done: u: STUB:SLOW two"


@pytest.mark.parametrize(
    ("prompt", "error"),
    [
        ("STUB:FAIL please", r"^Stub failure: user: STUB:FAIL please\n$"),
        ("STUB:EXIT now", r"^agent exited with code 3"),
    ],
)
async def test_failed_runs_end_in_an_error_message(
    agents: Agents, docker_client: docker.DockerClient, prompt: str, error: str
) -> None:
    channel = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(channel, "u", prompt)
    await agents.recorder.wait_for(channel, "error")
    [status] = [d for k, d in agents.recorder.of(channel) if d.get("status") == "error"]
    assert re.search(error, status["error"]), status
    history = await agents.history(channel)
    assert [m.is_bot for m in history] == [False, True]
    assert history[0].content == prompt  # the user's message is never lost
    assert history[1].content == f"⚠️ Agent run failed: {status['error']}"
    assert channel_containers(docker_client, channel) == []


async def test_garbage_lines_are_skipped(agents: Agents) -> None:
    channel = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(channel, "u", "STUB:GARBAGE ok")
    await agents.recorder.wait_for(channel, "completed")
    assert (await agents.history(channel))[-1].content == "Done: user: STUB:GARBAGE ok\n"


async def test_timeout(nursery: trio.Nursery, agents_factory, docker_client) -> None:  # type: ignore[no-untyped-def]
    agents: Agents = await agents_factory(nursery, timeout=2)
    channel = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(channel, "u", "STUB:HANG")
    await agents.recorder.wait_for(channel, "error")
    [status] = [d for k, d in agents.recorder.of(channel) if d.get("status") == "error"]
    assert status["error"] == "agent timed out after 2s"
    assert channel_containers(docker_client, channel) == []


async def test_missing_image(nursery: trio.Nursery, agents_factory) -> None:  # type: ignore[no-untyped-def]
    agents: Agents = await agents_factory(nursery, image="loop-missing:none")
    channel = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(channel, "u", "hello")
    await agents.recorder.wait_for(channel, "error")
    [status] = [d for k, d in agents.recorder.of(channel) if d.get("status") == "error"]
    assert status["error"] == (
        "agent image loop-missing:none not found; build it with: "
        "loop-server image build --image loop-missing:none"
    )
    assert (await agents.history(channel))[0].content == "hello"


async def test_no_docker_engine(nursery: trio.Nursery, agents_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = DockerEngine(base_url=f"unix://{tmp_path}/no-such-docker.sock")
    agents: Agents = await agents_factory(nursery, engine=engine)
    channel = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(channel, "u", "hello")
    await agents.recorder.wait_for(channel, "error")
    [status] = [d for k, d in agents.recorder.of(channel) if d.get("status") == "error"]
    assert status["error"].startswith("docker engine not reachable: ")
    history = await agents.history(channel)
    assert history[0].content == "hello"
    assert history[1].content.startswith("⚠️ Agent run failed: docker engine not reachable")


async def test_unusable_work_dir(agents: Agents, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A channel whose dir_path is a file: a clear error, not an internal one."""
    from loop_server.domain import ChannelUpsert

    channel, blocker = await agents.new_channel(), tmp_path / "a-file"
    blocker.write_text("")
    await agents.store.channels.upsert(
        ChannelUpsert(channel_id=channel, name=channel, dir_path=str(blocker), platform="local"),
        SystemClock().now(),
    )
    await agents.orchestrator.handle_incoming_message(channel, "u", "hello")
    await agents.recorder.wait_for(channel, "error")
    [status] = [d for k, d in agents.recorder.of(channel) if d.get("status") == "error"]
    assert status["error"] == f"preparing work dir {blocker}: Not a directory"
    history = await agents.history(channel)
    assert [m.content for m in history] == ["hello", f"⚠️ Agent run failed: {status['error']}"]


async def _running_container(
    agents: Agents, client: docker.DockerClient, channel: str
) -> docker.models.containers.Container:
    # The engine filters on "running", not us: a container being created is listed (as
    # "created") a moment before it can be inspected, and the SDK's ``list`` inspects every
    # container it lists, so asking for all of them while the runner's create is under way
    # raised NotFound for a container that was there (dockerd 20.10; the window widens under
    # load). A running container is past that window.
    filters = {"label": f"{CHANNEL_LABEL}={channel}", "status": "running"}
    with trio.fail_after(30):
        while True:
            found = await trio.to_thread.run_sync(lambda: client.containers.list(filters=filters))
            if found:
                return found[0]
            await trio.sleep(0.05)  # polls Docker, the thing outside our control


async def test_container_killed_mid_run(agents: Agents, docker_client: docker.DockerClient) -> None:
    channel = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(channel, "u", "STUB:HANG")
    container = await _running_container(agents, docker_client, channel)
    await trio.to_thread.run_sync(container.kill)
    await agents.recorder.wait_for(channel, "error")
    [status] = [d for k, d in agents.recorder.of(channel) if d.get("status") == "error"]
    assert status["error"].startswith("agent exited with code 137")
    assert channel_containers(docker_client, channel) == []


async def test_stop_mid_run(agents: Agents, docker_client: docker.DockerClient) -> None:
    channel = await agents.new_channel()
    assert agents.orchestrator.stop(channel) is False
    await agents.orchestrator.handle_incoming_message(channel, "u", "STUB:HANG")
    await _running_container(agents, docker_client, channel)
    assert agents.orchestrator.active_chat_channel_ids() == {channel}
    assert agents.orchestrator.stop(channel) is True
    await agents.recorder.wait_for(channel, "error")
    assert agents.recorder.of(channel)[-1] == (
        "agent.status",
        {"status": "error", "error": "stopped"},
    )
    assert (await agents.history(channel))[-1].content == STOPPED_TEXT
    assert channel_containers(docker_client, channel) == []


async def test_scheduled_task_runs_through_the_channel_queue(agents: Agents) -> None:
    from datetime import UTC, datetime

    from loop_server.domain import NewTask

    channel = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(channel, "u", "make the channel")
    await agents.recorder.wait_for(channel, "completed")
    now = datetime.now(UTC)
    task_id = await agents.store.tasks.create(
        NewTask(
            channel_id=channel,
            schedule="1h",
            type="interval",
            prompt="nightly report",
            next_run_at=now,
            created_at=now,
        )
    )
    task = await agents.store.tasks.get(task_id)
    assert task is not None
    with trio.fail_after(60):
        answer = await agents.orchestrator.execute(task)
    assert answer == "Done: nightly report"
    assert (await agents.history(channel))[-1].content == "Done: nightly report"


def _project_key(work_dir: str) -> str:
    """Claude Code's name for a work dir under ``projects/`` (non-alphanumerics → "-")."""
    return re.sub(r"[^A-Za-z0-9]", "-", work_dir)


async def test_sessions_are_kept_in_the_claude_dir_between_containers(agents: Agents) -> None:
    """Each run has a fresh container; the session it starts must outlive it, or the next
    ``--resume`` finds nothing (real Claude, and the stub, fail then)."""
    channel = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(channel, "u", "first")
    await agents.recorder.wait_for(channel, "completed")
    stored = await agents.store.channels.get(channel)
    assert stored is not None and stored.session_id
    work_dir = f"{agents.loop_dir}/{channel}/work"
    transcript = (
        agents.loop_dir
        / "claude"
        / "projects"
        / _project_key(work_dir)
        / f"{stored.session_id}.jsonl"
    )
    assert transcript.is_file(), sorted(str(p) for p in (agents.loop_dir / "claude").rglob("*"))
    await agents.orchestrator.handle_incoming_message(channel, "u", "STUB:ECHO_ARGS second")
    await agents.recorder.wait_for(channel, "completed", 2)
    reply = (await agents.history(channel))[-1].content
    assert f"--resume {stored.session_id}" in reply
    assert len(transcript.read_text().splitlines()) == 2  # the same session, one more turn


async def test_a_session_that_is_gone_is_replaced_by_a_new_one(agents_factory, nursery) -> None:  # type: ignore[no-untyped-def]
    """Without a Claude dir that outlives containers (or after it was wiped) the stored
    session cannot be resumed: the run starts a new session with the history instead of
    failing this and every later message of the channel."""
    agents: Agents = await agents_factory(nursery, claude_dir="")
    channel = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(channel, "u", "first")
    await agents.recorder.wait_for(channel, "completed")
    first = await agents.store.channels.get(channel)
    assert first is not None and first.session_id
    await agents.orchestrator.handle_incoming_message(channel, "u", "STUB:ECHO_ARGS second")
    await agents.recorder.wait_for(channel, "completed", 2)
    statuses = [d["status"] for k, d in agents.recorder.of(channel) if k == "agent.status"]
    assert statuses == ["running", "completed", "running", "completed"]
    reply = (await agents.history(channel))[-1].content
    assert "--resume" not in reply  # the retry starts over
    assert reply.endswith(
        "user: first\nassistant: Done: user: first\n\nuser: STUB:ECHO_ARGS second\n"
    )
    second = await agents.store.channels.get(channel)
    assert second is not None and second.session_id not in ("", first.session_id)


async def test_a_thread_without_a_dir_works_in_its_parents(agents: Agents) -> None:
    """Its fork of the parent's session is found (Claude keys sessions by work dir), and it
    sees the parent's files."""
    parent = await agents.new_channel()
    await agents.orchestrator.handle_incoming_message(parent, "u", "start")
    await agents.recorder.wait_for(parent, "completed")
    parent_row = await agents.store.channels.get(parent)
    assert parent_row is not None and parent_row.dir_path == ""
    threads = ThreadService(
        agents.store, LocalPlatform(), clock=SystemClock(), loop_dir=str(agents.loop_dir)
    )
    thread = await threads.create_thread(parent, "side quest", "u", "")
    await agents.orchestrator.handle_incoming_message(thread, "u", "STUB:ECHO_ARGS in thread")
    await agents.recorder.wait_for(thread, "completed")
    reply = (await agents.history(thread))[-1].content
    parent_work = f"{agents.loop_dir}/{parent}/work"
    assert f"--mcp-config {parent_work}/.loop/mcp-{thread}.json" in reply
    assert f"--resume {parent_row.session_id} --fork-session" in reply
    assert not (agents.loop_dir / thread).exists()
    # Deleting the thread removes its MCP config from that dir, and only its own.
    await threads.delete_thread(thread)
    assert not (agents.loop_dir / parent / "work" / ".loop" / f"mcp-{thread}.json").exists()
    assert (agents.loop_dir / parent / "work" / ".loop" / f"mcp-{parent}.json").exists()
