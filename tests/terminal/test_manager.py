"""The session manager's own logic on in-memory TTYs: history and live output, viewers,
slow viewers, input, resize, stop, process exit, idle reaping and shutdown (SPEC §6, A.4).

Rules: no Docker and no sockets here (``FakeLauncher`` hands out in-memory streams; the test
plays the process at the other end); every test has an absolute deadline; time-based
behaviour runs on pytest-trio's ``autojump_clock``, so nothing really sleeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from loop_server.protocols import TerminalManager
from loop_server.terminal import SessionManager, TerminalError, Viewer

DEADLINE = 10
#: Under the autojump clock time is virtual: the deadline still stops a hang, at once.
VIRTUAL_DEADLINE = 24 * 3600


@dataclass
class FakeProcess:
    """One process: ``stream`` is the manager's end, ``tty`` the test's (the process)."""

    stream: trio.abc.Stream
    tty: trio.abc.Stream
    initial_output: bytes = b""
    sizes: list[tuple[int, int]] = field(default_factory=list)
    killed: int = 0
    resize_error: str = ""

    async def resize(self, rows: int, cols: int) -> None:
        await trio.lowlevel.checkpoint()
        if self.resize_error:
            raise RuntimeError(self.resize_error)
        self.sizes.append((rows, cols))

    async def kill(self) -> bool:
        await trio.lowlevel.checkpoint()
        self.killed += 1
        return True


class FakeLauncher:
    def __init__(self, *, lockstep: bool = False) -> None:
        self.started: list[tuple[str, list[str]]] = []
        self.processes: list[FakeProcess] = []
        self.lockstep = lockstep
        self.initial_output = b""
        self.error = ""

    async def start(self, container_id: str, cmd: Sequence[str]) -> FakeProcess:
        await trio.lowlevel.checkpoint()
        if self.error:
            raise RuntimeError(self.error)
        pair = (
            trio.testing.lockstep_stream_pair if self.lockstep else trio.testing.memory_stream_pair
        )
        ours, theirs = pair()
        process = FakeProcess(ours, theirs, initial_output=self.initial_output)
        self.started.append((container_id, list(cmd)))
        self.processes.append(process)
        return process


async def start_manager(
    nursery: trio.Nursery, launcher: FakeLauncher, **options: float
) -> SessionManager:
    manager = SessionManager(launcher, **options)  # type: ignore[arg-type]
    await nursery.start(manager.run)
    return manager


async def read_exactly(viewer: Viewer, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        received += await viewer.receive_output()
    return bytes(received)


async def test_create_runs_the_default_shell_and_the_creator_sees_everything(
    nursery: trio.Nursery,
) -> None:
    launcher = FakeLauncher()
    launcher.initial_output = b"motd\r\n"
    manager = await start_manager(nursery, launcher)
    typed: TerminalManager = manager  # what the endpoint takes (checked by mypy)
    assert typed is manager
    with trio.fail_after(DEADLINE):
        session_id, viewer, history = await manager.create_session("c1", [])
        assert len(session_id) == 8 and int(session_id, 16) >= 0
        assert history == b""
        assert launcher.started == [("c1", ["/bin/sh"])]
        process = launcher.processes[0]
        await process.tty.send_all(b"$ ")
        assert await read_exactly(viewer, 8) == b"motd\r\n$ "  # output from before the socket first
        await manager.create_session("c1", ["bash", "-l"])
        assert launcher.started[1] == ("c1", ["bash", "-l"])


async def test_history_then_live_output_without_gap_or_duplicate(nursery: trio.Nursery) -> None:
    launcher = FakeLauncher()
    manager = await start_manager(nursery, launcher, history_bytes=64)
    with trio.fail_after(DEADLINE):
        session_id, first, _ = await manager.create_session("c1", [])
        tty = launcher.processes[0].tty
        sent = bytearray()
        for n in range(30):
            chunk = f"<{n}>".encode()
            sent += chunk
            await tty.send_all(chunk)
            if n == 20:
                # Let the pump take what is in flight, then attach mid-stream.
                await trio.testing.wait_all_tasks_blocked()
                second, history = await manager.attach_session(session_id)
                assert history == bytes(sent[-64:])  # the ring keeps the newest 64 bytes
                attached_at = len(sent)
        everything = await read_exactly(first, len(sent))
        assert everything == bytes(sent)
        # Every byte after the snapshot once, none before it.
        assert await read_exactly(second, len(sent) - attached_at) == bytes(sent[attached_at:])
        with pytest.raises(trio.WouldBlock):
            second.receive_output_nowait()


async def test_a_viewer_that_never_reads_slows_nobody(nursery: trio.Nursery) -> None:
    launcher = FakeLauncher()
    manager = await start_manager(nursery, launcher, viewer_queue_bytes=4096, viewer_queue_chunks=8)
    with trio.fail_after(DEADLINE):
        session_id, reader, _ = await manager.create_session("c1", [])
        stalled, _ = await manager.attach_session(session_id)
        tty = launcher.processes[0].tty
        total = 0
        received = bytearray()
        for n in range(200):
            chunk = bytes([n % 256]) * 1000
            total += len(chunk)
            await tty.send_all(chunk)
            received += await reader.receive_output()
        while len(received) < total:
            received += await reader.receive_output()
        assert len(received) == total
        stats = manager.statistics()
        assert stats.viewers == 2
        assert stats.dropped_bytes == stalled.dropped_bytes > 0
        kept = stalled.receive_output_nowait()
        assert len(kept) <= 4096 + 1000
        assert kept == bytes(received[-len(kept) :])  # what it kept is the newest output


async def test_detach_ends_the_viewer_and_leaves_the_session_running(
    nursery: trio.Nursery,
) -> None:
    launcher = FakeLauncher()
    manager = await start_manager(nursery, launcher)
    with trio.fail_after(DEADLINE):
        session_id, viewer, _ = await manager.create_session("c1", [])
        await launcher.processes[0].tty.send_all(b"unread")
        await trio.testing.wait_all_tasks_blocked()
        await manager.detach(session_id, viewer)
        with pytest.raises(trio.EndOfChannel):
            await viewer.receive_output()  # what it had not read is dropped with it
        with pytest.raises(TerminalError, match=r"^client not found$"):
            await manager.detach(session_id, viewer)
        with pytest.raises(TerminalError, match=r"^session not found$"):
            await manager.detach("deadbeef", viewer)
        again, history = await manager.attach_session(session_id)
        assert history == b"unread"
        assert manager.has_session(session_id)
        with pytest.raises(TerminalError, match=r"^session not found$"):
            await manager.attach_session("deadbeef")
        del again


async def test_input_and_resize(nursery: trio.Nursery) -> None:
    launcher = FakeLauncher()
    manager = await start_manager(nursery, launcher)
    with trio.fail_after(DEADLINE):
        session_id, _, _ = await manager.create_session("c1", [])
        process = launcher.processes[0]
        await manager.send_input(session_id, b"ls\n")
        await manager.send_input(session_id, b"")
        assert await process.tty.receive_some() == b"ls\n"
        await manager.resize(session_id, 40, 120)
        assert process.sizes == [(40, 120)]
        process.resize_error = "exec not running"
        with pytest.raises(TerminalError, match=r"^resizing exec: exec not running$"):
            await manager.resize(session_id, 1, 1)
        for call in (manager.send_input("nope0000", b"x"), manager.resize("nope0000", 1, 1)):
            with pytest.raises(TerminalError, match=r"^session not found$"):
                await call


async def test_input_to_a_process_that_does_not_read_times_out(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    launcher = FakeLauncher(lockstep=True)  # send_all waits until the process reads
    manager = await start_manager(nursery, launcher, input_timeout=3)
    with trio.fail_after(DEADLINE):
        session_id, _, _ = await manager.create_session("c1", [])
        started = trio.current_time()
        with pytest.raises(TerminalError, match=r"^writing input: timed out after 3s$"):
            await manager.send_input(session_id, b"x")
        assert trio.current_time() - started == pytest.approx(3)


async def test_process_exit_ends_every_viewer_after_its_output(nursery: trio.Nursery) -> None:
    launcher = FakeLauncher()
    manager = await start_manager(nursery, launcher)
    with trio.fail_after(DEADLINE):
        session_id, viewer, _ = await manager.create_session("c1", [])
        tty = launcher.processes[0].tty
        await tty.send_all(b"bye\r\n")
        await tty.aclose()
        assert await viewer.receive_output() == b"bye\r\n"
        with pytest.raises(trio.EndOfChannel):
            await viewer.receive_output()
        # Still registered until stopped or reaped: a late viewer gets the last output.
        late, history = await manager.attach_session(session_id)
        assert history == b"bye\r\n"
        with pytest.raises(trio.EndOfChannel):
            await late.receive_output()
        with pytest.raises(TerminalError, match=r"^writing input: session has ended$"):
            await manager.send_input(session_id, b"x")
        assert manager.statistics().running == 0


async def test_stop_kills_the_process_and_ends_every_viewer(nursery: trio.Nursery) -> None:
    launcher = FakeLauncher()
    manager = await start_manager(nursery, launcher)
    with trio.fail_after(DEADLINE):
        session_id, viewer, _ = await manager.create_session("c1", [])
        other, _ = await manager.attach_session(session_id)
        assert await manager.stop_session(session_id) == "c1"
        assert launcher.processes[0].killed == 1
        for each in (viewer, other):
            with pytest.raises(trio.EndOfChannel):
                await each.receive_output()
        assert not manager.has_session(session_id)
        with pytest.raises(TerminalError, match=r"^session not found$"):
            await manager.stop_session(session_id)
        # The process's side sees its terminal closed.
        assert await launcher.processes[0].tty.receive_some() == b""


async def test_launch_failures_carry_the_engine_text(nursery: trio.Nursery) -> None:
    launcher = FakeLauncher()
    launcher.error = "docker engine not reachable: no socket"
    manager = await start_manager(nursery, launcher)
    with (
        trio.fail_after(DEADLINE),
        pytest.raises(TerminalError, match=r"^docker engine not reachable: no socket$"),
    ):
        await manager.create_session("c1", [])
    assert manager.statistics().sessions == 0


async def test_sessions_without_viewers_are_reaped_after_the_idle_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    launcher = FakeLauncher()
    manager = await start_manager(nursery, launcher, idle_timeout=60)
    with trio.fail_after(VIRTUAL_DEADLINE):
        watched, _, _ = await manager.create_session("c1", [])
        abandoned, viewer, _ = await manager.create_session("c2", [])
        await trio.sleep(10)
        left_at = trio.current_time()
        await manager.detach(abandoned, viewer)
        await manager.wait_session_gone(abandoned)
        assert trio.current_time() - left_at == pytest.approx(60)
        assert launcher.processes[1].killed == 1
        # Watched for hours: never reaped.
        await trio.sleep(4 * 3600)
        assert manager.has_session(watched)
        stats = manager.statistics()
        assert (stats.sessions, stats.reaped) == (1, 1)


async def test_a_returning_viewer_saves_a_session_from_the_reaper(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    launcher = FakeLauncher()
    manager = await start_manager(nursery, launcher, idle_timeout=60)
    with trio.fail_after(VIRTUAL_DEADLINE):
        session_id, viewer, _ = await manager.create_session("c1", [])
        await manager.detach(session_id, viewer)
        await trio.sleep(59)
        back, _ = await manager.attach_session(session_id)
        await trio.sleep(600)
        assert manager.has_session(session_id)
        await manager.detach(session_id, back)
        await manager.wait_session_gone(session_id)


async def test_shutdown_kills_every_process(autojump_clock: trio.testing.MockClock) -> None:
    launcher = FakeLauncher()
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            manager = await start_manager(nursery, launcher)
            await manager.create_session("c1", [])
            _, viewer, _ = await manager.create_session("c2", [])
            nursery.cancel_scope.cancel()
        assert [p.killed for p in launcher.processes] == [1, 1]
        with pytest.raises(trio.EndOfChannel):
            await viewer.receive_output()
        assert manager.statistics().sessions == 0
        with pytest.raises(TerminalError, match=r"^terminal manager is not running$"):
            await manager.create_session("c1", [])


async def test_an_instance_names_where_a_session_of_another_instance_lives(
    nursery: trio.Nursery,
) -> None:
    # Several instances (docs/scale-out.md): session ids carry the instance that owns them.
    launcher = FakeLauncher()
    here = SessionManager(launcher, instance="instance-1")  # type: ignore[arg-type]
    await nursery.start(here.run)
    there = SessionManager(launcher, instance="instance-2")  # type: ignore[arg-type]
    await nursery.start(there.run)
    with trio.fail_after(DEADLINE):
        session_id, _, _ = await there.create_session("c1", [])
        hex_part, _, owner = session_id.partition("@")
        assert owner == "instance-2" and int(hex_part, 16) >= 0 and len(hex_part) == 8
        elsewhere = f'session {session_id} is served by instance "instance-2"'
        with pytest.raises(TerminalError, match=elsewhere):
            await here.attach_session(session_id)
        with pytest.raises(TerminalError, match=elsewhere):
            await here.stop_session(session_id)
        with pytest.raises(TerminalError, match=r"^session not found$"):
            await here.attach_session("0123abcd@instance-1")  # ours, but gone
        viewer, _ = await there.attach_session(session_id)
        assert viewer is not None
