"""The terminal connection's byte-moving layer without Docker: output that the socket does not
take whole, ordering against status messages written by another task of the connection; and
the pump's coalescing of output (it queues, it never writes a socket).

Rules: loopback socket pairs only; every test has an absolute deadline; nothing sleeps to
wait for a result (the peer reads until it has what it expects).
"""

from __future__ import annotations

import socket
import struct

import pytest
import trio
import trio.testing

from loop_server.serving._terminal_socket import TerminalSocket
from loop_server.terminal import TerminalServices, Viewer
from tests.terminal.test_manager import FakeLauncher, start_manager

DEADLINE = 10


def read_frames(data: bytes) -> list[tuple[int, bytes]]:
    frames = []
    offset = 0
    while offset < len(data):
        opcode, length = data[offset] & 0x0F, data[offset + 1] & 0x7F
        offset += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, offset)
            offset += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, offset)
            offset += 8
        frames.append((opcode, data[offset : offset + length]))
        offset += length
    return frames


async def test_direct_writes_stay_in_order_with_everything_else(nursery: trio.Nursery) -> None:
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ours.setblocking(False)
    peer = trio.SocketStream(trio.socket.from_stdlib_socket(theirs))
    manager = await start_manager(nursery, FakeLauncher())
    terminal = TerminalSocket(
        trio.SocketStream(trio.socket.from_stdlib_socket(ours)),
        TerminalServices(manager),
        max_message_size=1 << 20,
        close_timeout=1,
    )
    nursery.start_soon(terminal.run, b"", b"")
    with trio.fail_after(DEADLINE):
        await trio.testing.wait_all_tasks_blocked()
        big = bytes(range(256)) * 4096  # 1 MiB: the socket takes only part of it at once
        received = bytearray()

        async def drain() -> None:
            while b"status" not in received:
                received.extend(await peer.receive_some(1 << 16))

        async with trio.open_nursery() as writers:
            # Two tasks of the connection write at once: the output is not interleaved with
            # the status message, and it comes first because it started first.
            writers.start_soon(terminal.send_output, big)
            await trio.testing.wait_all_tasks_blocked()
            writers.start_soon(terminal.send_text, b"status")
            writers.start_soon(drain)
        frames = read_frames(bytes(received))
        assert b"".join(p for op, p in frames if op == 0x2) == big
        assert frames[-1] == (0x1, b"status")
        assert all(len(p) <= 1 << 16 for _, p in frames)
        await terminal.send_output(b"echo")
        assert read_frames(await peer.receive_some(100)) == [(0x2, b"echo")]
    await peer.aclose()


async def test_a_viewer_only_queues_and_hands_over_everything_queued_at_once() -> None:
    viewer = Viewer("s", max_bytes=1 << 20, max_chunks=100)
    received: list[bytes] = []

    async def reader() -> None:
        received.append(await viewer.receive_output())

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            # The pump pushes three reads while the connection's task is parked: they reach it
            # as one batch (one frame, one write), written by that task, not by the pump.
            viewer.push(b"x")
            viewer.push(b"y" * 5000)
            viewer.push(b"z")
    assert received == [b"x" + b"y" * 5000 + b"z"]


async def test_bulk_output_is_read_in_larger_pieces(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    launcher = FakeLauncher()
    manager = await start_manager(nursery, launcher, coalesce_delay=0.5)
    with trio.fail_after(DEADLINE):
        _, viewer, _ = await manager.create_session("c1", [])
        tty = launcher.processes[0].tty
        started = trio.current_time()
        await tty.send_all(b"a" * 4096)
        assert await viewer.receive_output() == b"a" * 4096
        for _ in range(3):
            await tty.send_all(b"b" * 100)
        # The pump waited after the bulk read: the small chunks arrive in one read.
        assert await viewer.receive_output() == b"b" * 300
        assert trio.current_time() - started == pytest.approx(0.5)
        await tty.send_all(b"c")
        assert await viewer.receive_output() == b"c"
