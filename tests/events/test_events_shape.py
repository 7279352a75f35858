"""The concurrency shape of ``/api/ws`` (docs/events.md): a memory channel per connection, a
writer task per connection in the connection's nursery, and nothing left behind.

Rules as in the other tests/events modules: loopback only (a socket pair, or 127.0.0.1 port
0), absolute deadlines, no sleeping to wait for a result.
"""

from __future__ import annotations

import base64
import json
import os
import socket

import trio
import trio.testing

from loop_server.events import EventsHub
from loop_server.serving._events_connection import EventsConnection
from tests.events.events_helpers import RawClient, StartServer, client_frame, raw_connect

DEADLINE = 10.0


def all_tasks() -> set[trio.lowlevel.Task]:
    found: set[trio.lowlevel.Task] = set()
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is None:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return found


async def test_a_failed_write_unregisters_and_cancels_the_connection() -> None:
    """The peer stops taking data but keeps its side open, so only the *write* can fail: the
    writer's error must end the reader too (the nursery is cancelled) and unregister."""
    ours, theirs = socket.socketpair()
    hub = EventsHub()
    subscription = hub.register()
    connection = EventsConnection(
        trio.SocketStream(trio.socket.from_stdlib_socket(ours)),
        hub,
        subscription,
        max_message_size=1 << 20,
        close_timeout=DEADLINE,
    )
    finished = trio.Event()

    async def serve() -> None:
        await connection.run(b"", b"")
        finished.set()

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            await trio.testing.wait_all_tasks_blocked()
            assert hub.statistics().subscribers == 1
            theirs.shutdown(socket.SHUT_RD)  # writes to it now fail with EPIPE
            hub.broadcast_agent_status("C1", "running")
            await finished.wait()
    # Ended by the write: the reader was still waiting for data that never came.
    assert hub.statistics().subscribers == 0
    assert subscription.closed
    theirs.close()


async def test_a_cancelled_publisher_leaves_every_subscriber_with_whole_frames(
    start_server: StartServer,
) -> None:
    """Publishing never awaits, so cancelling the publishing task between two broadcasts
    cannot leave an event half-delivered: every subscriber gets the same complete frames."""
    server = await start_server()
    hub = server.hub
    assert hub is not None
    clients: list[RawClient] = []
    with trio.fail_after(DEADLINE):
        for _ in range(5):
            clients.append(await raw_connect(server.port, "/api/ws"))
        await hub.wait_subscriber_count(5)
        published = 0

        async def publish_forever() -> None:
            nonlocal published
            while True:
                hub.broadcast_agent_status("C1", "x" * 3000)  # frames bigger than one packet
                published += 1
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish_forever)
            for _ in range(20):
                await trio.lowlevel.checkpoint()
            nursery.cancel_scope.cancel()
        assert published > 0
        for client in clients:
            seqs = []
            for _ in range(published):
                opcode, payload = await client.receive_frame()
                assert opcode == 0x1
                seqs.append(json.loads(payload)["seq"])
            assert seqs == list(range(1, published + 1))
            await client.send(client_frame(0x8, b"\x03\xe8"))
            _, code, _ = await client.receive_until_close()
            assert code == 1000
            await client.aclose()


async def test_no_task_survives_10k_connect_disconnect_cycles(start_server: StartServer) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    request = (
        f"GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    ).encode()
    await trio.testing.wait_all_tasks_blocked()
    before = len(all_tasks())
    cycles = 10_000
    workers = 16
    done = 0

    async def cycle_many(count: int) -> None:
        nonlocal done
        for _ in range(count):
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                key = base64.b64encode(os.urandom(16))
                await stream.send_all(request + b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")
                # Half the clients say goodbye properly, half just vanish.
                if done % 2:
                    await stream.send_all(client_frame(0x8, b"\x03\xe8"))
                    while await stream.receive_some(4096):
                        pass
                else:
                    data = await stream.receive_some(4096)
                    assert data.startswith(b"HTTP/1.1 101 ")
            done += 1

    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:
            for _ in range(workers):
                nursery.start_soon(cycle_many, cycles // workers)
        await hub.wait_subscriber_count(0)
        # The listener's connection tasks end as soon as they see their sockets close.
        await trio.testing.wait_all_tasks_blocked()
    assert done == cycles
    assert len(all_tasks()) == before
    assert hub.statistics().subscribers == 0
