"""``/api/ws`` end to end through ``serve()``: real sockets, real clients.

Rules (as in every module of tests/events/): the server listens on 127.0.0.1 port 0; clients
are real trio-websocket connections or raw sockets on loopback; every test runs under an
absolute deadline (``trio.fail_after``); nothing sleeps to wait for a result: a test waits for
the frame, the pong (which proves the server read everything sent before the ping),
``hub.wait_subscriber_count`` or ``trio.testing.wait_all_tasks_blocked``.
"""

from __future__ import annotations

import json
import socket
import struct

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, ConnectionRejected

from loop_server.events import EventsHub
from tests.events.events_helpers import (
    DEADLINE,
    RawClient,
    StartServer,
    client_frame,
    connect_ws,
    raw_connect,
    read_http_response,
)

pytestmark = pytest.mark.filterwarnings("error")


def envelope(message: str | bytes) -> dict[str, object]:
    decoded = json.loads(message)
    assert isinstance(decoded, dict)
    return decoded


async def test_events_arrive_in_the_envelope(start_server: StartServer) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    with trio.fail_after(DEADLINE):
        async with connect_ws(server.port, "/api/ws") as ws:
            await ws.ping()
            hub.broadcast_agent_status("C1", "error", "boom")
            got = envelope(await ws.get_message())
            assert got["type"] == "agent.status"
            assert got["channel_id"] == "C1"
            assert got["data"] == {"status": "error", "error": "boom"}
            assert isinstance(got["timestamp"], int) and got["seq"] == 1
            assert set(got) == {"type", "channel_id", "data", "timestamp", "seq"}


async def test_channels_query_and_subscribe_replaces(start_server: StartServer) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    with trio.fail_after(DEADLINE):
        async with connect_ws(server.port, "/api/ws?channels=C1,C3") as ws:
            await ws.ping()
            for channel in ("C2", "C3"):
                hub.broadcast_agent_status(channel, "running")
            assert envelope(await ws.get_message())["channel_id"] == "C3"

            await ws.send_message(json.dumps({"type": "subscribe", "channels": ["C2"]}))
            await ws.ping()  # answered after the subscribe was applied
            for channel in ("C1", "C3", "C2"):
                hub.broadcast_agent_status(channel, "running")
            assert envelope(await ws.get_message())["channel_id"] == "C2"

            await ws.send_message(json.dumps({"type": "subscribe"}))
            await ws.ping()
            hub.broadcast_agent_status("C7", "running")
            assert envelope(await ws.get_message())["channel_id"] == "C7"


async def test_channels_are_split_on_commas_only(start_server: StartServer) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    with trio.fail_after(DEADLINE):
        async with connect_ws(server.port, "/api/ws?channels=%20C1,C2") as ws:
            await ws.ping()
            for channel in ("C1", " C1"):
                hub.broadcast_agent_status(channel, "running")
            assert envelope(await ws.get_message())["channel_id"] == " C1"


async def test_garbage_from_the_client_is_ignored(start_server: StartServer) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    with trio.fail_after(DEADLINE):
        async with connect_ws(server.port, "/api/ws?channels=C1") as ws:
            for garbage in (
                "not json",
                "[1, 2]",
                '{"type": "unsubscribe", "channels": ["C2"]}',
                '{"type": "subscribe", "channels": "C2"}',
                '{"type": "subscribe", "channels": [1]}',
                '{"type": 5}',
                "[" * 100_000 + "]" * 100_000,  # deeper than Python's parser goes
            ):
                await ws.send_message(garbage)
            await ws.send_message(b"\xff\x00\xfe binary garbage")
            await ws.ping()
            hub.broadcast_agent_status("C2", "running")
            hub.broadcast_agent_status("C1", "running")
            assert envelope(await ws.get_message())["channel_id"] == "C1"
            # Binary JSON counts too (upstream reads either kind).
            await ws.send_message(b'{"Type": "subscribe", "Channels": ["C2"]}')
            await ws.ping()
            hub.broadcast_agent_status("C1", "running")
            hub.broadcast_agent_status("C2", "running")
            assert envelope(await ws.get_message())["channel_id"] == "C2"


async def test_oversized_message_closes_with_1009(start_server: StartServer) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    with trio.fail_after(DEADLINE):
        async with connect_ws(server.port, "/api/ws") as ws:
            await ws.send_message("x" * ((1 << 20) + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason is not None
            assert closed.value.reason.code == 1009
        await hub.wait_subscriber_count(0)


async def test_message_of_exactly_the_limit_is_accepted(start_server: StartServer) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    with trio.fail_after(DEADLINE):
        async with connect_ws(server.port, "/api/ws") as ws:
            await ws.send_message(b" " * (1 << 20))
            await ws.ping()
            hub.broadcast_agent_status("C1", "running")
            assert envelope(await ws.get_message())["seq"] == 1


async def test_fragmented_subscribe_and_protocol_error(start_server: StartServer) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    with trio.fail_after(DEADLINE):
        async with await raw_connect(server.port, "/api/ws") as client:
            assert client.status == 101
            message = json.dumps({"type": "subscribe", "channels": ["C2"]}).encode()
            await client.send(
                client_frame(0x1, message[:10], fin=False)
                + client_frame(0x9, b"mid")  # a ping between fragments is allowed
                + client_frame(0x0, message[10:])
                + client_frame(0x9, b"sync")
            )
            assert await client.receive_frame() == (0xA, b"mid")
            assert await client.receive_frame() == (0xA, b"sync")
            hub.broadcast_agent_status("C1", "running")
            hub.broadcast_agent_status("C2", "running")
            _, payload = await client.receive_frame()
            assert envelope(payload)["channel_id"] == "C2"
            # An unmasked client frame is a protocol error: close 1002.
            await client.send(client_frame(0x1, b"{}", mask=False))
            _, code, _ = await client.receive_until_close()
            assert code == 1002
        await hub.wait_subscriber_count(0)


async def test_client_close_is_echoed(start_server: StartServer) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    with trio.fail_after(DEADLINE):
        async with await raw_connect(server.port, "/api/ws") as client:
            await client.send(client_frame(0x8, struct.pack("!H", 1000) + b"bye"))
            assert await client.receive_until_close() == ([], 1000, "")
            # The server closes TCP after the handshake.
            with pytest.raises(EOFError):
                await client.receive_frame()
        await hub.wait_subscriber_count(0)


def _connection_tasks() -> list[trio.lowlevel.Task]:
    """Tasks of events connections still alive anywhere in this run."""
    found: list[trio.lowlevel.Task] = []
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is None:
            continue
        if "EventsConnection" in task.name or "serve_events_request" in task.name:
            found.append(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return found


async def test_slow_consumer_gets_4008_while_others_receive_everything(
    start_server: StartServer,
) -> None:
    hub = EventsHub(queue_size=4)
    server = await start_server(hub=hub, close_timeout=30.0)
    content = "x" * 16384
    with trio.fail_after(30):
        # A tiny receive window, and a client that does not read: the server's socket buffer
        # fills, then the connection's queue.
        never_reads = await raw_connect(server.port, "/api/ws", receive_buffer=4096)
        assert never_reads.status == 101
        async with connect_ws(server.port, "/api/ws", message_queue_size=64) as healthy:
            await healthy.ping()
            published = 0
            while hub.statistics().slow_consumers_closed == 0:
                assert published < 5000, "the slow consumer was never detected"
                hub.broadcast_message_streaming(f"C{published % 7}", content)
                published += 1
                # Wait for the healthy client to have it: it keeps up, the other does not.
                assert envelope(await healthy.get_message())["seq"] == published
            assert hub.statistics().subscribers == 1
            hub.broadcast_agent_status("C1", "completed")
            assert envelope(await healthy.get_message())["seq"] == published + 1

        # The stalled client finally reads: whatever was in flight, then close 4008.
        texts, code, reason = await never_reads.receive_until_close()
        assert (code, reason) == (4008, "slow consumer")
        assert len(texts) < published
        seen = [envelope(text)["seq"] for text in texts]
        assert seen == list(range(1, len(seen) + 1))
        await never_reads.aclose()
        await hub.wait_subscriber_count(0)
        await trio.testing.wait_all_tasks_blocked()
        assert _connection_tasks() == []
    stats = hub.statistics()
    assert stats.slow_consumers_closed == 1
    assert stats.subscribers == 0


async def test_client_vanishing_mid_stream_leaves_nothing_behind(
    start_server: StartServer,
) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    with trio.fail_after(DEADLINE):
        async with connect_ws(server.port, "/api/ws") as healthy:
            vanishing = await raw_connect(server.port, "/api/ws")
            await healthy.ping()
            await hub.wait_subscriber_count(2)
            for n in range(1, 51):
                hub.broadcast_message_streaming(f"C{n}", "partial " * 100)
                if n == 10:
                    # Reset, not FIN: the peer is gone without a word.
                    vanishing.stream.socket.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    await vanishing.aclose()
                assert envelope(await healthy.get_message())["seq"] == n
            await hub.wait_subscriber_count(1)
        await hub.wait_subscriber_count(0)
        await trio.testing.wait_all_tasks_blocked()
        assert _connection_tasks() == []
        assert hub.statistics().subscribers == 0


async def test_replay_since_then_live(start_server: StartServer) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    for channel in ("C1", "C2", "C1", "C1"):
        hub.broadcast_agent_status(channel, "running")
    with trio.fail_after(DEADLINE):
        async with connect_ws(server.port, "/api/ws?channels=C1&since=1&hello=1") as ws:
            hello = envelope(await ws.get_message())
            assert hello == {"type": "hello", "epoch": hub.epoch, "seq": 4}
            hub.broadcast_agent_status("C1", "completed")
            got = [envelope(await ws.get_message())["seq"] for _ in range(3)]
            assert got == [3, 4, 5]


async def test_replay_after_reconnect_has_no_gap(start_server: StartServer) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    with trio.fail_after(DEADLINE):
        async with connect_ws(server.port, "/api/ws") as ws:
            await ws.ping()
            hub.broadcast_agent_status("C1", "running")
            last = envelope(await ws.get_message())["seq"]
        # Events happen while the client is away.
        hub.broadcast_message_streaming("C1", "a")
        hub.broadcast_message_streaming("C1", "ab")
        hub.broadcast_agent_status("C1", "completed")
        resource = f"/api/ws?since={last}&epoch={hub.epoch}"
        async with connect_ws(server.port, resource) as ws:
            hub.broadcast_agent_status("C1", "running")
            got = [envelope(await ws.get_message()) for _ in range(3)]
            assert [e["seq"] for e in got] == [3, 4, 5]
            assert got[0]["data"] == {"content": "ab"}


@pytest.mark.parametrize("query", ["since=99", "since=0&epoch=old-run", "since=soon"])
async def test_replay_truncated_then_live(start_server: StartServer, query: str) -> None:
    hub = EventsHub(history_size=2)
    server = await start_server(hub=hub)
    for _ in range(3):
        hub.broadcast_agent_status("C1", "running")
    with trio.fail_after(DEADLINE):
        async with connect_ws(server.port, f"/api/ws?{query}") as ws:
            first = envelope(await ws.get_message())
            assert first["type"] == "replay.truncated"
            hub.broadcast_agent_status("C1", "running")
            assert envelope(await ws.get_message())["seq"] == 4


async def test_history_older_than_retained_is_truncated(start_server: StartServer) -> None:
    hub = EventsHub(history_size=2)
    server = await start_server(hub=hub)
    for _ in range(3):
        hub.broadcast_agent_status("C1", "running")
    with trio.fail_after(DEADLINE):
        async with connect_ws(server.port, "/api/ws?since=0&hello=1") as ws:
            assert envelope(await ws.get_message())["type"] == "hello"
            assert envelope(await ws.get_message())["type"] == "replay.truncated"


async def test_shutdown_closes_event_sockets_with_1001(start_server: StartServer) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    with trio.fail_after(DEADLINE):
        async with connect_ws(server.port, "/api/ws") as ws:
            await ws.ping()
            server.shutdown.set()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            reason = closed.value.reason
            assert reason is not None
            assert (reason.code, reason.reason) == (1001, "server shutting down")
        await server.finished.wait()
        # Stopped accepting: the port is closed.
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", server.port)
    assert hub.statistics().subscribers == 0


async def test_unauthorized_is_a_plain_401(start_server: StartServer) -> None:
    def token_only(headers: list[tuple[bytes, bytes]], query: dict[str, str]) -> bool:
        return (b"authorization", b"Bearer s3cret") in headers or query.get("token") == "s3cret"

    server = await start_server(authorize=token_only)
    with trio.fail_after(DEADLINE):
        with pytest.raises(ConnectionRejected) as rejected:
            async with connect_ws(server.port, "/api/ws"):
                pass  # pragma: no cover
        assert rejected.value.status_code == 401
        assert rejected.value.body == b"unauthorized\n"
        headers = dict(rejected.value.headers)
        assert headers[b"content-type"] == b"text/plain; charset=utf-8"

        async with connect_ws(server.port, "/api/ws?token=s3cret") as ws:
            await ws.ping()
        async with connect_ws(
            server.port,
            "/api/ws",
            extra_headers=[(b"Authorization", b"Bearer s3cret")],
        ) as ws:
            await ws.ping()


async def test_no_hub_is_501(start_server: StartServer) -> None:
    server = await start_server(hub=None)
    with trio.fail_after(DEADLINE):
        with pytest.raises(ConnectionRejected) as rejected:
            async with connect_ws(server.port, "/api/ws"):
                pass  # pragma: no cover
        assert rejected.value.status_code == 501
        assert rejected.value.body == b"events not configured\n"


async def test_plain_get_is_400_on_new_and_reused_connections(
    start_server: StartServer,
) -> None:
    server = await start_server()
    with trio.fail_after(DEADLINE):
        async with httpx.AsyncClient() as client:
            response = await client.get(server.url("/api/ws"))
            assert (response.status_code, response.text) == (400, "Bad Request\n")
            assert response.headers["access-control-allow-origin"] == "*"
        async with httpx.AsyncClient() as client:
            # The second request of a keep-alive connection reaches hypercorn: same answer.
            assert (await client.get(server.url("/hello"))).status_code == 200
            response = await client.get(server.url("/api/ws"))
            assert (response.status_code, response.text) == (400, "Bad Request\n")


async def test_http_requests_still_reach_the_app(start_server: StartServer) -> None:
    server = await start_server()
    with trio.fail_after(DEADLINE):
        async with httpx.AsyncClient() as client:
            response = await client.get(server.url("/hello"))
            assert (response.status_code, response.text) == (200, "hello")
            body = b"payload " * 10000
            response = await client.post(server.url("/echo"), content=body)
            assert response.content == body
            # Keep-alive: both answers came over the same connection.
            first = (await client.get(server.url("/peer"))).text
            second = (await client.get(server.url("/peer"))).text
            assert first == second != ""
            assert (await client.get(server.url("/missing"))).status_code == 404
            # Methods other than GET on the events path are the app's business.
            assert (await client.post(server.url("/api/ws"))).status_code in (404, 405)


async def test_request_arriving_byte_by_byte(start_server: StartServer) -> None:
    server = await start_server()
    with trio.fail_after(DEADLINE):
        async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
            for byte in b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n":
                await stream.send_all(bytes([byte]))
            buffer = b""
            while b"hello" not in buffer:
                data = await stream.receive_some(4096)
                assert data
                buffer += data
            assert buffer.startswith(b"HTTP/1.1 200")


async def test_other_websocket_paths_reach_the_app(start_server: StartServer) -> None:
    server = await start_server()
    with trio.fail_after(DEADLINE):
        async with connect_ws(server.port, "/ws/echo") as ws:
            await ws.send_message("ping-pong")
            assert await ws.get_message() == "ping-pong"


async def test_upgrade_on_a_reused_connection_still_gets_events(
    start_server: StartServer,
) -> None:
    server = await start_server()
    hub = server.hub
    assert hub is not None
    with trio.fail_after(DEADLINE):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        await stream.send_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        buffer = b""
        while not buffer.endswith(b"hello"):
            buffer += await stream.receive_some(4096)
        await stream.send_all(
            b"GET /api/ws?channels=C2&hello=1 HTTP/1.1\r\nHost: localhost\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(1)
        assert head.startswith(b"HTTP/1.1 101")
        client = RawClient(stream, 101, head, b"")
        assert envelope((await client.receive_frame())[1])["type"] == "hello"
        await hub.wait_subscriber_count(1)
        hub.broadcast_agent_status("C1", "running")
        hub.broadcast_agent_status("C2", "running")
        assert envelope((await client.receive_frame())[1])["seq"] == 2
        await client.send(client_frame(0x8, struct.pack("!H", 1000)))
        _, code, _ = await client.receive_until_close()
        assert code == 1000
        await client.aclose()
        await hub.wait_subscriber_count(0)


async def test_slow_head_is_dropped(start_server: StartServer) -> None:
    server = await start_server(head_timeout=0.2)
    with trio.fail_after(DEADLINE):
        async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
            await stream.send_all(b"GET /api/ws HTTP/1.1\r\n")
            # The server gives up on the unfinished head and closes.
            assert await stream.receive_some(4096) == b""


async def test_huge_head_is_refused(start_server: StartServer) -> None:
    server = await start_server()
    with trio.fail_after(DEADLINE):
        async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
            await stream.send_all(b"GET /api/ws?x=" + b"a" * 20000 + b" HTTP/1.1\r\n")
            response = b""
            while True:
                data = await stream.receive_some(4096)
                if not data:
                    break
                response += data
            assert response.startswith(b"HTTP/1.1 431")


async def test_malformed_head_is_400(start_server: StartServer) -> None:
    server = await start_server()
    with trio.fail_after(DEADLINE):
        async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
            await stream.send_all(b"GET /api/ws HTTP/1.1\r\nno colon here\r\n\r\n")
            head, body = await read_http_response(stream)
            assert head.startswith(b"HTTP/1.1 400 ")
            assert body == b"Bad Request\n"


def _deny(headers: list[tuple[bytes, bytes]], query: dict[str, str]) -> bool:
    return False


@pytest.mark.parametrize(
    ("options", "status", "text"),
    [
        ({"authorize": _deny}, 401, "unauthorized\n"),
        ({"hub": None}, 501, "events not configured\n"),
    ],
)
async def test_refusals_on_a_reused_connection(
    start_server: StartServer, options: dict[str, object], status: int, text: str
) -> None:
    server = await start_server(**options)
    with trio.fail_after(DEADLINE):
        async with httpx.AsyncClient() as client:
            assert (await client.get(server.url("/hello"))).status_code == 200
            # Same connection, so this one reaches hypercorn and the ASGI fallback.
            response = await client.get(server.url("/api/ws"))
            assert (response.status_code, response.text) == (status, text)
        async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
            await stream.send_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await read_http_response(stream)
            await stream.send_all(
                b"GET /api/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            head, body = await read_http_response(stream)
            assert head.startswith(f"HTTP/1.1 {status}".encode())
            assert body == text.encode()


async def test_refusal_headers_are_the_same_on_new_and_reused_connections(
    start_server: StartServer,
) -> None:
    # CORS as on every REST answer (Authorization allowed, for the token), and gorilla's
    # Sec-WebSocket-Version on the 400, whichever path serves the request.
    server = await start_server()
    with trio.fail_after(DEADLINE):
        async with httpx.AsyncClient() as client:
            first = await client.get(server.url("/api/ws"))
            second = await client.get(server.url("/api/ws"))  # the same connection: hypercorn
        for response in (first, second):
            assert (response.status_code, response.text) == (400, "Bad Request\n")
            assert response.headers["access-control-allow-headers"] == (
                "Content-Type, Authorization"
            )
            assert response.headers["sec-websocket-version"] == "13"


async def test_a_bad_websocket_key_is_400_on_new_and_reused_connections(
    start_server: StartServer,
) -> None:
    server = await start_server()
    upgrade = (
        b"GET /api/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: not-16-bytes\r\n\r\n"
    )
    with trio.fail_after(DEADLINE):
        for reused in (False, True):
            async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
                if reused:
                    await stream.send_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    await read_http_response(stream)
                await stream.send_all(upgrade)
                head, body = await read_http_response(stream)
                assert head.startswith(b"HTTP/1.1 400"), (reused, head)
                assert body == b"Bad Request\n"
                assert b"sec-websocket-version: 13" in head.lower()
    assert server.hub is not None and server.hub.statistics().subscribers == 0


async def test_other_methods_are_405_and_head_is_answered_like_get(
    start_server: StartServer,
) -> None:
    # SPEC §1.4: `GET /api/ws` is a GET route of Go's ServeMux: another method is 405 with
    # Allow, HEAD is answered like GET (gorilla's 400, without the body).
    server = await start_server()
    with trio.fail_after(DEADLINE):
        async with httpx.AsyncClient() as client:
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                response = await client.request(method, server.url("/api/ws"), content=b"x" * 5000)
                assert (response.status_code, response.text) == (405, "Method Not Allowed\n")
                assert response.headers["allow"] == "GET, HEAD"
                assert response.headers["access-control-allow-origin"] == "*"
            response = await client.head(server.url("/api/ws?channels=a"))
            assert (response.status_code, response.content) == (400, b"")
            # The body was read: the keep-alive connection still works.
            assert (await client.get(server.url("/hello"))).text == "hello"
        async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
            # A body too big to read through is answered once past 1 MiB, and the connection
            # closed after the answer.
            await stream.send_all(
                b"POST /api/ws HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4194304\r\n\r\n"
                + b"x" * (1 << 20)
                + b"x" * 65536
            )
            head, body = await read_http_response(stream)
            assert head.startswith(b"HTTP/1.1 405") and body == b"Method Not Allowed\n"
            assert b"connection: close" in head.lower()

    def deny(headers: list[tuple[bytes, bytes]], query: dict[str, str]) -> bool:
        return False

    guarded = await start_server(authorize=deny)
    with trio.fail_after(DEADLINE):
        async with httpx.AsyncClient() as client:
            response = await client.post(guarded.url("/api/ws"))
            assert (response.status_code, response.text) == (401, "unauthorized\n")
