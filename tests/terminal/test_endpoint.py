"""``GET /api/ws/terminal`` end to end through ``serve()`` on the real Docker engine (SPEC §5).

Rules: the listener runs on 127.0.0.1 port 0 with a real terminal manager and real channel
containers of the test image (network none), removed after each test; clients are real
trio-websocket connections, or raw sockets where a client must misbehave (never read, send
unmasked or oversized frames); every test runs under an absolute deadline; nothing sleeps to
wait for a result — tests wait for status messages and for output markers written as shell
arithmetic (``m-$((40+2))`` → ``m-42``), so the terminal's echo of a command never matches.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import docker
import httpx
import pytest
import trio
from docker.models.containers import Container
from trio_websocket import ConnectionClosed, ConnectionRejected

from loop_server.api._gateway import events_authorizer
from loop_server.containers import (
    APP_LABEL,
    APP_VALUE,
    CHANNEL_LABEL,
    ROLE_LABEL,
    SHELL_ROLE,
    ChannelContainers,
    ContainerSettings,
    DockerEngine,
    DockerExec,
)
from loop_server.terminal import SessionManager
from tests.docker.fixtures import Containers
from tests.events.events_helpers import RawClient, client_frame, connect_ws, raw_connect
from tests.terminal.conftest import StartTerminalServer, start_shell
from tests.terminal.terminal_helpers import DEADLINE, FakeChannels, b64, open_terminal

pytestmark = pytest.mark.usefixtures("loop_test_image")

NewChannel = Callable[[], str]


def channel_containers(client: docker.DockerClient, channel_id: str) -> list[Container]:
    return list(
        client.containers.list(filters={"label": f"loop-channel={channel_id}", "status": "running"})
    )


async def test_create_by_container_id_input_output_resize(
    start_terminal_server: StartTerminalServer, shell_container: Container
) -> None:
    server = await start_terminal_server()
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            session_id = await term.create(container_id=shell_container.id, rows=31, cols=97)
            assert len(session_id) == 8 and int(session_id, 16) >= 0
            output = await term.run("stty size; echo m-$((40+2))", b"m-42")
            assert b"31 97\r\n" in output
            await term.send(type="resize", rows=12, cols=34)
            assert b"12 34\r\n" in await term.run("stty size; echo n-$((1+1))", b"n-2")
            await term.send(type="input", data="")  # valid: zero bytes
            await term.send(type="stop")
            assert await term.status() == {"type": "closed"}
            assert await term.status() == {"type": "stopped"}


async def test_create_by_channel_makes_a_shell_container_and_types_claude(
    start_terminal_server: StartTerminalServer,
    channels: FakeChannels,
    new_channel: NewChannel,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    server = await start_terminal_server()
    channel_id = new_channel()
    project = tmp_path / "My Project"
    project.mkdir()
    channels.add(channel_id, dir_path=str(project), session_id="sess-1")
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            await term.create(channel_id=channel_id)
            # No cmd: the interactive claude command is typed into the shell (claude_bin is
            # `echo` here, so its arguments come back as output).
            typed = (
                f"--mcp-config {project}/.loop/mcp-{channel_id}.json "
                "--dangerously-skip-permissions --resume sess-1\r\n"
            ).encode()
            await term.read_until(b"\n" + typed)
            found = await trio.to_thread.run_sync(channel_containers, docker_client, channel_id)
            assert len(found) == 1
            container = found[0]
            assert container.name.startswith("loop-my-project-")
            assert container.labels["app"] == "loop-agent"
            assert container.labels["loop-channel"] == channel_id
            assert container.attrs["HostConfig"]["NetworkMode"] == "none"
            hostname = await term.run("hostname; echo h-$((2+2))", b"h-4")
            assert container.id[:12].encode() in hostname
            # The same channel again finds the container it already has.
            await term.create(channel_id=channel_id, cmd=["hostname"], replacing=True)
            await term.read_until(container.id[:12].encode() + b"\r\n")
            await term.expect("closed")
        assert len(channel_containers(docker_client, channel_id)) == 1


async def test_create_by_channel_uses_the_channels_running_shell_container(
    start_terminal_server: StartTerminalServer,
    docker_containers: Containers,
    new_channel: NewChannel,
) -> None:
    server = await start_terminal_server()
    channel_id = new_channel()
    mine = start_shell(docker_containers, **{CHANNEL_LABEL: channel_id, ROLE_LABEL: SHELL_ROLE})
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            await term.create(channel_id=channel_id, cmd=["hostname"])
            await term.read_until(mine.id[:12].encode())
            assert await term.status() == {"type": "closed"}


async def test_create_by_channel_never_uses_an_agent_runs_container(
    start_terminal_server: StartTerminalServer,
    docker_containers: Containers,
    docker_client: docker.DockerClient,
    new_channel: NewChannel,
) -> None:
    """An agent run's container carries the channel label too, but is removed when its run
    ends (the terminal would die with it, seen in the soak), and a terminal's `stop` would
    kill the run: the terminal gets a shell container of its own."""
    server = await start_terminal_server()
    channel_id = new_channel()
    agent = start_shell(docker_containers, **{CHANNEL_LABEL: channel_id, APP_LABEL: APP_VALUE})
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            await term.create(channel_id=channel_id, cmd=["hostname"])
            await term.expect("closed")
    assert agent.id[:12].encode() not in term.output
    [shell] = [
        c
        for c in docker_client.containers.list(filters={"label": f"{CHANNEL_LABEL}={channel_id}"})
        if c.id != agent.id
    ]
    assert shell.labels[ROLE_LABEL] == SHELL_ROLE
    assert shell.id[:12].encode() in term.output
    agent.reload()
    assert agent.status == "running"  # untouched


@pytest.mark.parametrize(
    ("thread_session", "typed"),
    [
        ("", b"--resume sess-parent --fork-session\r\n"),
        ("sess-parent", b"--resume sess-parent --fork-session\r\n"),
        ("sess-own", b"--resume sess-own\r\n"),
    ],
)
async def test_a_thread_resumes_its_parents_session_until_it_diverges(
    start_terminal_server: StartTerminalServer,
    channels: FakeChannels,
    new_channel: NewChannel,
    thread_session: str,
    typed: bytes,
) -> None:
    server = await start_terminal_server()
    parent, thread = new_channel(), new_channel()
    channels.add(parent, session_id="sess-parent")
    channels.add(thread, parent_id=parent, session_id=thread_session)
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            await term.create(channel_id=thread)
            output = await term.read_until(b"permissions " + typed)
            assert b"--fork-session" not in typed or output.count(b"--fork-session") >= 1


async def test_channel_lookup_errors_are_ignored(
    start_terminal_server: StartTerminalServer,
    channels: FakeChannels,
    new_channel: NewChannel,
    loop_dir: Path,
) -> None:
    server = await start_terminal_server()
    channels.failing = True
    channel_id = new_channel()
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            await term.create(channel_id=channel_id)
            work = f"{loop_dir}/{channel_id}/work"
            await term.read_until(
                f"--mcp-config {work}/.loop/mcp-{channel_id}.json "
                "--dangerously-skip-permissions\r\n".encode()
            )


async def test_a_new_shell_container_gets_the_work_dir_an_agent_run_would(
    start_terminal_server: StartTerminalServer, new_channel: NewChannel, loop_dir: Path
) -> None:
    # SPEC §5.6: the shell container is made like an agent run's, which prepares the work dir
    # first: made by us, not by Docker (as root), with the MCP config file that the typed
    # `claude --mcp-config ...` names (Claude refuses a missing one).
    server = await start_terminal_server()
    channel_id = new_channel()
    work = loop_dir / channel_id / "work"
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            await term.create(
                channel_id=channel_id, cmd=["cat", f"{work}/.loop/mcp-{channel_id}.json"]
            )
            await term.expect("closed")  # the output before it is collected
            assert b'{"mcpServers": {}}' in term.output
    assert work.stat().st_uid == os.getuid()
    assert json.loads((work / ".loop" / f"mcp-{channel_id}.json").read_text()) == {"mcpServers": {}}


async def test_a_threads_shell_works_in_its_parents_work_dir(
    start_terminal_server: StartTerminalServer,
    new_channel: NewChannel,
    loop_dir: Path,
    channels: FakeChannels,
) -> None:
    """As its agent runs do (docs/decisions.md): a thread without a dir_path of its own sees
    its parent's files, and the typed claude command names its MCP file there."""
    server = await start_terminal_server(loop_dir=str(loop_dir))
    parent, thread = new_channel(), new_channel()
    channels.add(parent)
    channels.add(thread, parent_id=parent)
    work = loop_dir / parent / "work"
    work.mkdir(parents=True)
    (work / "notes.txt").write_text("parent-files-here\n")
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            await term.create(channel_id=thread, cmd=["sh", "-c", "pwd; cat notes.txt"])
            await term.expect("closed")
    assert f"{work}".encode() in term.output
    assert b"parent-files-here" in term.output
    assert (work / ".loop" / f"mcp-{thread}.json").is_file()
    assert not (loop_dir / thread).exists()


async def test_a_second_viewer_gets_the_history_then_the_same_live_output(
    start_terminal_server: StartTerminalServer, shell_container: Container
) -> None:
    server = await start_terminal_server()
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as first, open_terminal(server.port) as second:
            session_id = await first.create(container_id=shell_container.id)
            await first.run("echo before-$((1+1))", b"before-2")
            await second.send(type="attach", session_id=session_id)
            assert await second.status() == {"type": "attached", "session_id": session_id}
            await second.read_until(b"before-2")
            # The history is one binary frame, right after `attached`.
            assert b"before-2" in second.frames[0]
            await first.run("echo after-$((2+3))", b"after-5")
            await second.read_until(b"after-5")
            # Both saw the same bytes: the history, then live output, no gap, no duplicate.
            end = first.output.index(b"after-5") + len(b"after-5")
            assert second.output[:end] == first.output[:end]
            # Input from either viewer reaches the one shell.
            await second.type("echo from-second-$((3+3))\n")
            await first.read_until(b"from-second-6")


async def test_disconnect_then_reattach_by_session_id(
    start_terminal_server: StartTerminalServer, shell_container: Container
) -> None:
    server = await start_terminal_server()
    manager = server.endpoint.services.manager  # type: ignore[union-attr]
    assert isinstance(manager, SessionManager)
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            session_id = await term.create(container_id=shell_container.id)
            before = await term.run("echo pid=$$ x-$((4+4))", b"x-8")
        pid_line = before[before.rindex(b"pid=") :].split(b" ")[0]
        async with open_terminal(server.port) as term:
            await term.send(type="attach", session_id=session_id)
            await term.expect("attached")
            await term.read_until(b"x-8")  # what happened while away, from the history
            again = await term.run("echo pid=$$ y-$((5+4))", b"y-9")
            assert again[again.rindex(b"pid=") :].split(b" ")[0] == pid_line
        assert manager.has_session(session_id)


async def test_create_while_current_closes_the_old_stream_first(
    start_terminal_server: StartTerminalServer, shell_container: Container
) -> None:
    server = await start_terminal_server()
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term, open_terminal(server.port) as other:
            first = await term.create(container_id=shell_container.id)
            await term.send(type="create", container_id=shell_container.id)
            # The previous session's stream ends with `closed`, before `created`.
            assert await term.status() == {"type": "closed"}
            second = (await term.expect("created"))["session_id"]
            assert second != first
            # The first session kept running.
            await other.send(type="attach", session_id=first)
            await other.expect("attached")
            await other.run("echo alive-$((6+1))", b"alive-7")
            # Input goes to the current session only.
            await term.run("echo second-$((1+2))", b"second-3")
            assert b"second-3" not in other.output


async def test_stop_removes_the_container_before_answering(
    start_terminal_server: StartTerminalServer,
    new_channel: NewChannel,
    docker_client: docker.DockerClient,
) -> None:
    server = await start_terminal_server()
    channel_id = new_channel()
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            await term.create(channel_id=channel_id, cmd=["/bin/sh"])
            assert len(channel_containers(docker_client, channel_id)) == 1
            await term.send(type="stop")
            assert await term.status() == {"type": "closed"}
            assert await term.status() == {"type": "stopped"}
            assert channel_containers(docker_client, channel_id) == []
            # Nothing current any more.
            await term.send(type="stop")
            assert await term.error("no_session") == "no active session"


async def test_stop_a_detached_session_by_id(
    start_terminal_server: StartTerminalServer, shell_container: Container
) -> None:
    server = await start_terminal_server(stopper=None)
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            session_id = await term.create(container_id=shell_container.id)
        async with open_terminal(server.port) as term:
            await term.send(type="stop", session_id=session_id)
            assert await term.status() == {"type": "stopped"}
            await term.send(type="attach", session_id=session_id)
            assert await term.error("session_failed") == "session not found"


async def test_a_process_that_exits_closes_the_stream(
    start_terminal_server: StartTerminalServer, shell_container: Container
) -> None:
    server = await start_terminal_server()
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            session_id = await term.create(
                container_id=shell_container.id, cmd=["sh", "-c", "echo bye-$((3+3))"]
            )
            assert await term.status() == {"type": "closed"}  # no session_id in it
            assert b"bye-6" in term.output
            # Still current (upstream's caveat): input fails, the session is reported.
            await term.type("x")
            assert await term.error("session_failed") == "writing input: session has ended"
            # Re-attaching shows the last output, then `closed` at once.
            await term.send(type="attach", session_id=session_id)
            await term.expect("attached")
            assert await term.status() == {"type": "closed"}
            await term.send(type="stop")
            assert await term.status() == {"type": "stopped"}


async def test_a_container_killed_under_a_live_session(
    start_terminal_server: StartTerminalServer, shell_container: Container
) -> None:
    server = await start_terminal_server()
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            await term.create(container_id=shell_container.id)
            await term.run("echo up-$((1+6))", b"up-7")
            await trio.to_thread.run_sync(shell_container.kill)
            assert await term.status() == {"type": "closed"}


async def test_every_error_code(
    start_terminal_server: StartTerminalServer, shell_container: Container
) -> None:
    server = await start_terminal_server(finder=None)
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            # invalid_json: not JSON, not an object, a negative size, nested deeper than the
            # parser goes.
            deep = "[" * 100_000 + "]" * 100_000
            for garbage in ("not json", "[]", '{"type":"resize","rows":-1,"cols":80}', deep):
                await term.send_raw(garbage)
                assert await term.error("invalid_json") == "invalid JSON"
            await term.send_raw(b"\x00\xff\xfe binary garbage")
            assert await term.error("invalid_json") == "invalid JSON"
            await term.send(type="nope")
            assert await term.error("unknown_message") == "unknown message type: nope"
            await term.send(type=None)
            assert await term.error("unknown_message") == "unknown message type: "
            # no_session: nothing current yet.
            for kind in ("input", "resize", "stop"):
                await term.send(type=kind, data="YQ==", rows=1, cols=1)
                assert await term.error("no_session") == "no active session"
            # missing_field
            await term.send(type="create")
            assert await term.error("missing_field") == "container_id or channel_id required"
            await term.send(type="create", channel_id="c-no-finder")  # no finder configured
            assert await term.error("missing_field") == "container_id or channel_id required"
            await term.send(type="attach")
            assert await term.error("missing_field") == "session_id required"
            # session_failed
            await term.send(type="attach", session_id="deadbeef")
            assert await term.error("session_failed") == "session not found"
            await term.send(type="create", container_id="no-such-container")
            message = await term.error("session_failed")
            assert message == "creating exec: No such container: no-such-container"
            # invalid_input
            await term.send(type="create", container_id=shell_container.id, cmd=["a"] * 65)
            assert await term.error("invalid_input") == "cmd exceeds maximum arguments"
            await term.send(type="create", container_id=shell_container.id, cmd=["sh", ""])
            assert await term.error("invalid_input") == "cmd contains empty argument"
            await term.create(container_id=shell_container.id, cmd=["cat"] + ["-u"] * 63)
            await term.send(type="input", data="YQ")  # padding is required
            assert await term.error("invalid_input") == "invalid base64 data"
            await term.send(type="resize", rows=0, cols=80)
            assert await term.error("missing_field") == "rows and cols required"
            await term.send(type="resize", rows=24)
            assert await term.error("missing_field") == "rows and cols required"
            # The connection still works after every error.
            await term.send(type="input", data=b64(b"still-here\n"))
            await term.read_until(b"still-here\r\nstill-here")
            await term.create(container_id=shell_container.id, cmd=["true"], replacing=True)
            await term.expect("closed")
            await term.send(type="resize", rows=24, cols=80)  # the process has ended
            assert (await term.error("session_failed")).startswith("resizing exec: ")


async def test_a_nul_in_cmd_is_refused_before_any_container_or_session(
    start_terminal_server: StartTerminalServer,
    manager: SessionManager,
    new_channel: NewChannel,
    docker_client: docker.DockerClient,
    shell_container: Container,
) -> None:
    # SPEC A.2: caller text is validated. No exec can pass a NUL; Docker would start a
    # session that only prints an error, and a channel would get a shell container for it.
    server = await start_terminal_server()
    channel_id = new_channel()
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            for target in ({"channel_id": channel_id}, {"container_id": shell_container.id}):
                await term.send(type="create", cmd=["/bin/echo", "a\x00b"], **target)
                assert await term.error("invalid_input") == "cmd contains NUL byte"
            assert manager.statistics().sessions == 0
    assert channel_containers(docker_client, channel_id) == []


async def test_an_unreachable_engine(
    start_terminal_server: StartTerminalServer, nursery: trio.Nursery, loop_dir: Path
) -> None:
    engine = DockerEngine(base_url=f"unix://{os.devnull}.sock")
    manager = SessionManager(DockerExec(engine))
    await nursery.start(manager.run)
    containers = ChannelContainers(engine, ContainerSettings(image="x", loop_dir=str(loop_dir)))
    server = await start_terminal_server(manager=manager, finder=containers, stopper=containers)
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            await term.send(type="create", container_id="c1")
            message = await term.error("session_failed")
            assert message.startswith("docker engine not reachable: ")
            await term.send(type="create", channel_id="ch1")
            message = await term.error("session_failed")
            assert message.startswith("no running container for channel: ")
            assert "docker engine not reachable: " in message
    engine.close()


async def test_frames_binary_json_ping_and_close(
    start_terminal_server: StartTerminalServer, shell_container: Container
) -> None:
    server = await start_terminal_server()
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            # A binary frame is parsed as JSON too; keys match case-insensitively.
            create = {"TYPE": "create", "Container_ID": shell_container.id}
            await term.send_raw(json.dumps(create).encode())
            await term.expect("created")
            await term.ws.ping(b"p")
        # A client's close is answered and the connection ends (the session stays).
        client = await raw_connect(server.port, server.resource)
        async with client:
            assert client.status == 101
            await client.send(client_frame(0x8, struct.pack("!H", 4000) + b"bye"))
            _, code, _ = await client.receive_until_close()
            assert code == 4000


async def test_protocol_violations_and_oversized_messages_close_the_connection(
    start_terminal_server: StartTerminalServer,
) -> None:
    server = await start_terminal_server(manager=SessionManager(DockerExec(DockerEngine())))
    with trio.fail_after(DEADLINE):
        client = await raw_connect(server.port, server.resource)
        async with client:
            await client.send(client_frame(0x1, b'{"type":"stop"}', mask=False))
            _, code, _ = await client.receive_until_close()
            assert code == 1002
        async with connect_ws(server.port, server.resource) as ws:
            await ws.send_message("x" * ((1 << 20) + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason is not None
            assert closed.value.reason.code == 1009
        # Exactly the limit is a message like any other (here: invalid JSON).
        async with open_terminal(server.port) as term:
            await term.send_raw(" " * (1 << 20))
            assert await term.error("invalid_json") == "invalid JSON"


async def test_a_viewer_that_never_reads_does_not_stall_another(
    start_terminal_server: StartTerminalServer, shell_container: Container
) -> None:
    server = await start_terminal_server()
    manager = server.endpoint.services.manager  # type: ignore[union-attr]
    assert isinstance(manager, SessionManager)
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            session_id = await term.create(container_id=shell_container.id)
            stalled: RawClient = await raw_connect(
                server.port, server.resource, receive_buffer=4096
            )
            async with stalled:
                attach = json.dumps({"type": "attach", "session_id": session_id}).encode()
                await stalled.send(client_frame(0x1, attach))
                # 12 MB of output: far more than the stalled client's socket buffers and its
                # 1 MiB queue hold.
                await term.run(
                    "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 12000000; "
                    "echo; echo flood-$((9+9))",
                    b"flood-18",
                )
                stats = manager.statistics()
                assert stats.viewers == 2
                assert stats.dropped_bytes > 0


async def test_token_rule(start_terminal_server: StartTerminalServer) -> None:
    server = await start_terminal_server(authorize=events_authorizer("s3cret"))
    with trio.fail_after(DEADLINE):
        with pytest.raises(ConnectionRejected) as rejected:
            async with connect_ws(server.port, server.resource):
                pass  # pragma: no cover
        assert (rejected.value.status_code, rejected.value.body) == (401, b"unauthorized\n")
        with pytest.raises(ConnectionRejected):
            async with connect_ws(server.port, server.resource + "?token=wrong"):
                pass  # pragma: no cover
        async with open_terminal(server.port, server.resource + "?token=s3cret") as term:
            await term.send(type="stop")
            await term.error("no_session")
        async with connect_ws(
            server.port, server.resource, extra_headers=[(b"Authorization", b"Bearer s3cret")]
        ) as ws:
            await ws.ping()


async def test_no_manager_is_501_and_a_plain_get_is_400(
    start_terminal_server: StartTerminalServer,
) -> None:
    unconfigured = await start_terminal_server(manager=None)
    with trio.fail_after(DEADLINE):
        with pytest.raises(ConnectionRejected) as rejected:
            async with connect_ws(unconfigured.port, unconfigured.resource):
                pass  # pragma: no cover
        assert rejected.value.status_code == 501
        assert rejected.value.body == b"terminal not configured\n"
        server = await start_terminal_server(manager=SessionManager(DockerExec(DockerEngine())))
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{server.port}{server.resource}"
            response = await client.get(url)
            assert (response.status_code, response.text) == (400, "Bad Request\n")
            # The second request of a keep-alive connection reaches hypercorn: same answers.
            response = await client.get(url)
            assert (response.status_code, response.text) == (400, "Bad Request\n")
            response = await client.get(f"http://127.0.0.1:{unconfigured.port}/hello")
            response = await client.get(
                f"http://127.0.0.1:{unconfigured.port}{unconfigured.resource}"
            )
            assert (response.status_code, response.text) == (501, "terminal not configured\n")


async def test_other_methods_are_405_on_new_and_reused_connections(
    start_terminal_server: StartTerminalServer,
) -> None:
    # SPEC §1.4: `GET /api/ws/terminal` is a GET route of Go's ServeMux.
    server = await start_terminal_server()
    url = f"http://127.0.0.1:{server.port}{server.resource}"
    with trio.fail_after(DEADLINE):
        async with httpx.AsyncClient() as client:
            for _ in range(2):  # the second request reuses the connection
                response = await client.post(url, json={"type": "create"})
                assert (response.status_code, response.text) == (405, "Method Not Allowed\n")
                assert response.headers["allow"] == "GET, HEAD"
            response = await client.head(url)
            assert (response.status_code, response.content) == (400, b"")
            assert response.headers["access-control-allow-headers"] == (
                "Content-Type, Authorization"
            )


async def test_upgrade_on_a_reused_connection_gets_the_same_terminal(
    start_terminal_server: StartTerminalServer, shell_container: Container
) -> None:
    """The listener sees only a connection's first request; a later upgrade goes through
    hypercorn and the ASGI fallback: same conversation."""
    server = await start_terminal_server()
    with trio.fail_after(DEADLINE):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        await stream.send_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        buffer = b""
        while not buffer.endswith(b"hello"):
            buffer += await stream.receive_some(4096)
        await stream.send_all(
            b"GET /api/ws/terminal HTTP/1.1\r\nHost: localhost\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(1)
        assert head.startswith(b"HTTP/1.1 101")
        client = RawClient(stream, 101, head, b"")
        async with client:
            create = {"type": "create", "container_id": shell_container.id, "cmd": ["hostname"]}
            await client.send(client_frame(0x1, json.dumps(create).encode()))
            opcode, payload = await client.receive_frame()
            assert opcode == 0x1 and json.loads(payload)["type"] == "created"
            output = b""
            while True:
                opcode, payload = await client.receive_frame()
                if opcode == 0x1:
                    assert payload == b'{"type":"closed"}\n'
                    break
                output += payload
            assert shell_container.id[:12].encode() in output
            await client.send(client_frame(0x1, b"{"))
            opcode, payload = await client.receive_frame()
            assert json.loads(payload)["error_code"] == "invalid_json"


async def test_shutdown_closes_terminal_sockets_with_1001(
    start_terminal_server: StartTerminalServer, shell_container: Container
) -> None:
    server = await start_terminal_server()
    manager = server.endpoint.services.manager  # type: ignore[union-attr]
    assert isinstance(manager, SessionManager)
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            session_id = await term.create(container_id=shell_container.id)
            server.shutdown.set()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await term.ws.get_message()
            reason = closed.value.reason
            assert reason is not None
            assert (reason.code, reason.reason) == (1001, "server shutting down")
        await server.finished.wait()
        assert server.endpoint.connections == 0
        # The session belongs to the manager, which outlives the listener.
        assert manager.has_session(session_id)
