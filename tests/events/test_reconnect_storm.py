"""A reconnect storm is queued, not reset: thousands of clients connecting at once, while the
server is too busy to accept any of them, all get their WebSocket.

The kernel completes a TCP handshake only while the listen queue has room; past it, with
hypercorn's default backlog of 100, connects are dropped and clients retry or are reset. The
test blocks the server's Trio thread (it runs in the same thread) while it opens the storm, so
the kernel alone decides, then lets the server accept them all. The figure for 10,000
simultaneous connects is measured by benchmarks/reconnect_storm.py (docs/benchmarks.md).

Rules: 127.0.0.1, port 0; absolute deadlines; no sleeping to wait for a result.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import time
from pathlib import Path

import pytest
import trio

from tests.events.events_helpers import StartServer

STORM = 3000
DEADLINE = 120


def _listen_queue_limit() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


async def test_a_storm_of_connects_while_the_server_is_busy_is_served(
    start_server: StartServer,
) -> None:
    if _listen_queue_limit() <= STORM:
        pytest.skip(f"net.core.somaxconn is {_listen_queue_limit()}: too small for the storm")
    server = await start_server()
    assert server.hub is not None
    clients: list[socket.socket] = []
    try:
        # -- the storm, with the server's thread busy (this very code) -------------------
        poller = select.poll()
        for _ in range(STORM):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", server.port))
            clients.append(client)
            poller.register(client, select.POLLOUT)
        connected: set[int] = set()
        give_up = time.monotonic() + 10  # the Trio thread is blocked on purpose meanwhile
        while len(connected) < STORM and time.monotonic() < give_up:
            for fd, _ in poller.poll(100):
                connected.add(fd)
                poller.unregister(fd)
        refused = [c for c in clients if c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)]
        assert not refused, f"{len(refused)} of {STORM} connects failed"
        assert len(connected) == STORM, (
            f"only {len(connected)} of {STORM} handshakes completed: the listen queue is short"
        )

        # -- now the server runs: every client gets its 101 ---------------------------
        async def upgrade(client: socket.socket) -> None:
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(client))
            key = base64.b64encode(os.urandom(16))
            await stream.send_all(
                b"GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
            )
            answer = b""
            while b"\r\n\r\n" not in answer:
                data = await stream.receive_some(4096)  # a reset raises here
                assert data, "closed before the 101"
                answer += data
            assert answer.startswith(b"HTTP/1.1 101 ")

        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                for client in clients:
                    nursery.start_soon(upgrade, client)
            await server.hub.wait_subscriber_count(STORM)
    finally:
        for client in clients:
            client.close()
