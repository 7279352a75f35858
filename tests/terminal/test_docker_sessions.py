"""Terminal sessions on the real Docker engine, without the WebSocket layer: the exec TTY as a
Trio stream, input and output, resize, process exit, a container killed under a live session,
killing the exec (directly and when this process may not signal it), idle reaping (SPEC §6,
A.4).

Rules: real containers of the test image with no network, removed after each test; every wait
has an absolute deadline; nothing sleeps to wait for a result — tests wait for output markers
(written as shell arithmetic, so the terminal's echo of a command never matches), for the end
of a stream, or for ``wait_session_gone``.
"""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import pytest
import trio
from docker.models.containers import Container

from loop_server.containers import DockerEngine, DockerExec
from loop_server.containers import _exec as exec_module
from loop_server.containers._exec import TtyExec, adopt_sdk_socket
from loop_server.terminal import SessionManager, TerminalError, Viewer
from tests.terminal.terminal_helpers import DEADLINE

pytestmark = pytest.mark.usefixtures("loop_test_image")


async def read_until(viewer: Viewer, needle: bytes) -> bytes:
    received = bytearray()
    while needle not in received:
        received += await viewer.receive_output()
    return bytes(received)


async def read_to_end(viewer: Viewer) -> bytes:
    received = bytearray()
    try:
        while True:
            received += await viewer.receive_output()
    except trio.EndOfChannel:
        return bytes(received)


async def stream_to_end(stream: trio.abc.ReceiveStream) -> bytes:
    received = bytearray()
    while data := await stream.receive_some(65536):
        received += data
    return bytes(received)


async def test_a_shell_session_input_output_and_resize(
    manager: SessionManager, shell_container: Container
) -> None:
    with trio.fail_after(DEADLINE):
        session_id, viewer, history = await manager.create_session(shell_container.id, [])
        assert history == b""
        await manager.send_input(session_id, b"echo out-$((40+2)); hostname\n")
        output = await read_until(viewer, shell_container.id[:12].encode())
        assert b"out-42" in output
        await manager.resize(session_id, 33, 101)
        await manager.send_input(session_id, b"stty size; echo sized-$((1+1))\n")
        assert b"33 101\r\n" in await read_until(viewer, b"sized-2")
        stats = manager.statistics()
        assert (stats.sessions, stats.running, stats.viewers) == (1, 1, 1)
        assert await manager.stop_session(session_id) == shell_container.id


async def test_exit_of_the_process_ends_the_session(
    manager: SessionManager, shell_container: Container
) -> None:
    with trio.fail_after(DEADLINE):
        session_id, viewer, _ = await manager.create_session(
            shell_container.id, ["sh", "-c", "echo bye-$((2+3)); exit 3"]
        )
        assert b"bye-5" in await read_to_end(viewer)
        with pytest.raises(TerminalError, match=r"^writing input: "):
            await manager.send_input(session_id, b"x")
        with pytest.raises(TerminalError, match=r"^resizing exec: "):
            await manager.resize(session_id, 10, 10)
        assert manager.statistics().running == 0
        await manager.stop_session(session_id)


async def test_a_container_killed_under_a_live_session(
    manager: SessionManager, shell_container: Container
) -> None:
    with trio.fail_after(DEADLINE):
        session_id, viewer, _ = await manager.create_session(shell_container.id, [])
        await manager.send_input(session_id, b"echo up-$((3+4))\n")
        await read_until(viewer, b"up-7")
        await trio.to_thread.run_sync(shell_container.kill)
        await read_to_end(viewer)
        # Stopping it still works: there is nothing left to kill.
        assert await manager.stop_session(session_id) == shell_container.id


async def test_unknown_or_stopped_containers(
    manager: SessionManager, shell_container: Container
) -> None:
    with trio.fail_after(DEADLINE):
        with pytest.raises(TerminalError, match=r"^creating exec: No such container: nope$"):
            await manager.create_session("nope", [])
        # A missing binary is only found out once the exec starts: Docker says so on the
        # terminal, which then ends.
        session_id, viewer, _ = await manager.create_session(
            shell_container.id, ["/no/such/binary"]
        )
        assert b"no such file" in (await read_to_end(viewer)).lower()
        await manager.stop_session(session_id)
        await trio.to_thread.run_sync(lambda: shell_container.stop(timeout=0))
        with pytest.raises(TerminalError, match=r"^creating exec: .*is not running"):
            await manager.create_session(shell_container.id, [])
        assert manager.statistics().sessions == 0


async def test_an_unreachable_engine(nursery: trio.Nursery, tmp_path: object) -> None:
    engine = DockerEngine(base_url=f"unix://{os.devnull}.sock")
    manager = SessionManager(DockerExec(engine))
    await nursery.start(manager.run)
    with (
        trio.fail_after(DEADLINE),
        pytest.raises(TerminalError, match=r"^docker engine not reachable: "),
    ):
        await manager.create_session("c1", [])
    engine.close()


async def start_jobs(tty: TtyExec) -> None:
    """A background job, then a foreground one; returns once both run."""
    received = bytearray()
    await tty.stream.send_all(b"sleep 1001 & sh -c 'echo started-$((1+1)); exec sleep 1000'\n")
    while b"started-2" not in received:
        received += await tty.stream.receive_some(65536)


async def processes(container: Container) -> str:
    top = await trio.to_thread.run_sync(container.exec_run, ["ps", "-o", "stat,args"])
    # Killed children of the container's init linger as zombies ("Z [sleep]").
    return "\n".join(line for line in top.output.decode().splitlines() if "Z" not in line)


async def test_kill_ends_the_shell_and_its_jobs(
    engine: DockerEngine, shell_container: Container
) -> None:
    with trio.fail_after(DEADLINE):
        tty = await DockerExec(engine).start(shell_container.id, ["/bin/sh"])
        async with tty.stream:
            await start_jobs(tty)
            assert await tty.kill() is True
            # Docker ends the stream once nothing holds the terminal any more.
            await stream_to_end(tty.stream)
        left = await processes(shell_container)
        assert "sleep 100" not in left and "/bin/sh" not in left
        assert await tty.kill() is True  # already gone: nothing to do


async def test_kill_inside_the_container_when_not_allowed_to_signal(
    engine: DockerEngine, shell_container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A docker-group user may not signal root's processes: the container kills its own."""

    def refuse(pid: int, signum: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", refuse)
    with trio.fail_after(DEADLINE):
        tty = await DockerExec(engine).start(shell_container.id, ["/bin/sh"])
        async with tty.stream:
            await start_jobs(tty)
            assert await tty.kill() is True
            await stream_to_end(tty.stream)


async def test_a_process_of_another_container_is_never_signalled(
    engine: DockerEngine, shell_container: Container
) -> None:
    with trio.fail_after(DEADLINE):
        tty = await DockerExec(engine).start(shell_container.id, ["/bin/sh"])
        async with tty.stream:
            await start_jobs(tty)  # running, so Docker knows its pid
            client = await engine.client()
            info = await trio.to_thread.run_sync(client.api.exec_inspect, tty.exec_id)
            verdict = await trio.to_thread.run_sync(
                exec_module.signal_exec_session, info["Pid"], "0" * 64
            )
            assert verdict is False
            assert await tty.kill() is True
            await stream_to_end(tty.stream)


async def test_idle_sessions_are_reaped(
    nursery: trio.Nursery, engine: DockerEngine, shell_container: Container
) -> None:
    manager = SessionManager(DockerExec(engine), idle_timeout=0.2)
    await nursery.start(manager.run)
    with trio.fail_after(DEADLINE):
        session_id, viewer, _ = await manager.create_session(shell_container.id, [])
        await manager.send_input(session_id, b"echo idle-$((5+5))\n")
        await read_until(viewer, b"idle-10")
        await manager.detach(session_id, viewer)
        await manager.wait_session_gone(session_id)
        assert manager.statistics().reaped == 1
        with pytest.raises(TerminalError, match=r"^session not found$"):
            await manager.attach_session(session_id)


def test_output_already_buffered_by_the_sdk_is_not_lost() -> None:
    """exec_start's answer and the first output can arrive in one read; the SDK's buffered
    reader then holds output that a read of the raw socket would never see."""
    engine_side, our_side = socket.socketpair()
    try:
        engine_side.sendall(b"HTTP/1.1 101 UPGRADED\r\nUpgrade: tcp\r\n\r\n/ # prompt")
        reader = our_side.makefile("rb")
        while reader.readline() not in (b"\r\n", b""):
            pass  # what http.client does with the head
        raw = reader.raw
        raw._response = SimpleNamespace(  # type: ignore[attr-defined]
            raw=SimpleNamespace(_fp=SimpleNamespace(fp=reader)), close=lambda: None
        )
        duplicate, buffered = adopt_sdk_socket(raw)
        with duplicate:
            assert buffered == b"/ # prompt"
            engine_side.sendall(b" more")
            duplicate.setblocking(True)
            assert duplicate.recv(100) == b" more"
    finally:
        engine_side.close()
        our_side.close()
