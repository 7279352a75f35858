"""RFC 6455 conformance of both WebSocket endpoints, over raw loopback sockets.

Autobahn's fuzzing client (the usual check) is a Python 2 tool shipped as a Docker image and
cannot run here (no image registry, no Python 2), so these tests send the same kinds of frames
it does: fragmentation with control frames in between, invalid UTF-8 (in one frame and split
across fragments, 1007), reserved bits and opcodes (1002), close codes and reasons, and the
message size limit (1009) — each on ``/api/ws`` and on ``/api/ws/terminal``, through the same
listener the server runs. Each test also checks that the server, after its close frame,
closes TCP.

Rules: 127.0.0.1, port 0; every wait under an absolute deadline; nothing sleeps to wait for a
result (the client reads until it has what it expects).
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio

from loop_server.events import EventsHub
from loop_server.serving import EventsEndpoint, TerminalEndpoint, serve
from loop_server.terminal import SessionManager
from tests.events.events_helpers import RawClient, allow_all, client_frame, make_app, raw_connect
from tests.terminal.terminal_helpers import hypercorn_config
from tests.terminal.test_manager import FakeLauncher

DEADLINE = 10
LIMIT = 1000
TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


@dataclass
class Server:
    port: int
    hub: EventsHub


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[Server]:
    hub = EventsHub()
    manager = SessionManager(FakeLauncher())  # type: ignore[arg-type]
    await nursery.start(manager.run)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    shutdown = trio.Event()
    await nursery.start(
        lambda task_status: serve(
            make_app(),
            hypercorn_config(),
            [sock],
            EventsEndpoint(hub, allow_all, max_message_size=LIMIT, close_timeout=DEADLINE),
            terminal=TerminalEndpoint(
                manager, allow_all, max_message_size=LIMIT, close_timeout=DEADLINE
            ),
            shutdown_trigger=shutdown.wait,
            task_status=task_status,
        )
    )
    yield Server(sock.getsockname()[1], hub)
    shutdown.set()


ENDPOINTS = ["/api/ws", "/api/ws/terminal"]


async def connect(server: Server, path: str) -> RawClient:
    client = await raw_connect(server.port, path)
    assert client.status == 101
    if path == "/api/ws":
        await server.hub.wait_subscriber_count(1)
    return client


async def closed_with(client: RawClient) -> tuple[int | None, str]:
    """Read to the server's close frame, then check it closes TCP: (code, reason)."""
    _, code, reason = await client.receive_until_close()
    with pytest.raises(EOFError):
        await client.receive_frame()
    return code, reason


async def message_was_acted_on(server: Server, client: RawClient, path: str) -> None:
    """The message sent was ``{"type":"subscribe","channels":["C9"]}``: prove the endpoint
    read it whole. The terminal answers an unknown type; the events endpoint filters."""
    if path == "/api/ws":
        # Frames are read in order: once the pong is back, the message before it was read.
        await client.send(client_frame(PING, b"sync"))
        assert await client.receive_frame() == (PONG, b"sync")
        server.hub.broadcast_agent_status("C1", "running")  # filtered out now
        server.hub.broadcast_agent_status("C9", "running")
        opcode, payload = await client.receive_frame()
        assert opcode == TEXT and json.loads(payload)["channel_id"] == "C9"
    else:
        opcode, payload = await client.receive_frame()
        assert opcode == TEXT
        assert json.loads(payload)["message"] == "unknown message type: subscribe"


SUBSCRIBE = b'{"type":"subscribe","channels":["C9"]}'


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_fragments_with_interleaved_control_frames(server: Server, path: str) -> None:
    with trio.fail_after(DEADLINE):
        async with await connect(server, path) as client:
            await client.send(
                client_frame(TEXT, SUBSCRIBE[:10], fin=False)
                + client_frame(PING, b"between")
                + client_frame(CONTINUATION, SUBSCRIBE[10:20], fin=False)
                + client_frame(PONG, b"unsolicited")
                + client_frame(CONTINUATION, b"", fin=False)
                + client_frame(CONTINUATION, SUBSCRIBE[20:])
            )
            assert await client.receive_frame() == (PONG, b"between")
            await message_was_acted_on(server, client, path)


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_a_message_split_inside_a_utf8_sequence_is_valid(server: Server, path: str) -> None:
    text = SUBSCRIBE.replace(b'"C9"]', '"C9"], "x": "é"'.encode())
    cut = text.index("é".encode()) + 1  # between the two bytes of é
    with trio.fail_after(DEADLINE):
        async with await connect(server, path) as client:
            await client.send(
                client_frame(TEXT, text[:cut], fin=False) + client_frame(CONTINUATION, text[cut:])
            )
            await message_was_acted_on(server, client, path)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "frames",
    [
        pytest.param(client_frame(TEXT, b'{"type":"\xff"}'), id="one-frame"),
        pytest.param(
            client_frame(TEXT, b'{"type":"\xce', fin=False) + client_frame(CONTINUATION, b'\x41"}'),
            id="split-sequence",
        ),
        pytest.param(
            # The invalid byte arrives in a later fragment; the message never finishes.
            client_frame(TEXT, b'{"type":', fin=False)
            + client_frame(CONTINUATION, b'"\xed\xa0\x80', fin=False),
            id="surrogate-in-fragment",
        ),
        pytest.param(client_frame(CLOSE, struct.pack("!H", 1000) + b"\xff"), id="close-reason"),
    ],
)
async def test_invalid_utf8_closes_1007(server: Server, path: str, frames: bytes) -> None:
    with trio.fail_after(DEADLINE):
        async with await connect(server, path) as client:
            await client.send(frames)
            code, _ = await closed_with(client)
            assert code == 1007


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "frames",
    [
        pytest.param(bytes([0xC1, 0x80]) + b"\x00" * 4, id="rsv1"),
        pytest.param(bytes([0xA1, 0x80]) + b"\x00" * 4, id="rsv2"),
        pytest.param(bytes([0x91, 0x80]) + b"\x00" * 4, id="rsv3"),
        pytest.param(client_frame(0x3, b""), id="reserved-data-opcode"),
        pytest.param(client_frame(0xB, b""), id="reserved-control-opcode"),
        pytest.param(client_frame(TEXT, b"x", mask=False), id="unmasked"),
        pytest.param(client_frame(PING, b"x" * 126), id="long-ping"),
        pytest.param(client_frame(PING, b"", fin=False), id="fragmented-ping"),
        pytest.param(client_frame(CONTINUATION, b"x"), id="continuation-first"),
        pytest.param(
            client_frame(TEXT, b"a", fin=False) + client_frame(TEXT, b"b"),
            id="message-inside-message",
        ),
        pytest.param(client_frame(CLOSE, b"\x03"), id="close-one-byte"),
        pytest.param(client_frame(CLOSE, struct.pack("!H", 1005)), id="close-1005"),
        pytest.param(client_frame(CLOSE, struct.pack("!H", 1006)), id="close-1006"),
        pytest.param(client_frame(CLOSE, struct.pack("!H", 999)), id="close-999"),
        pytest.param(client_frame(CLOSE, struct.pack("!H", 1004)), id="close-1004"),
        pytest.param(client_frame(CLOSE, struct.pack("!H", 2999)), id="close-2999"),
        pytest.param(client_frame(CLOSE, struct.pack("!H", 5000)), id="close-5000"),
    ],
)
async def test_protocol_violations_close_1002(server: Server, path: str, frames: bytes) -> None:
    with trio.fail_after(DEADLINE):
        async with await connect(server, path) as client:
            await client.send(frames)
            code, _ = await closed_with(client)
            assert code == 1002


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 3000, 4999])
async def test_valid_close_codes_are_echoed(server: Server, path: str, code: int) -> None:
    with trio.fail_after(DEADLINE):
        async with await connect(server, path) as client:
            await client.send(client_frame(CLOSE, struct.pack("!H", code) + "bye é".encode()))
            assert await closed_with(client) == (code, "")


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_empty_close_is_answered_with_an_empty_close(server: Server, path: str) -> None:
    with trio.fail_after(DEADLINE):
        async with await connect(server, path) as client:
            await client.send(client_frame(CLOSE, b""))
            assert await client.receive_frame() == (CLOSE, b"")


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "frames",
    [
        pytest.param(client_frame(TEXT, b"x" * (LIMIT + 1)), id="one-frame"),
        pytest.param(client_frame(BINARY, b"x" * (LIMIT + 1)), id="binary"),
        pytest.param(
            client_frame(TEXT, b"x" * 600, fin=False) + client_frame(CONTINUATION, b"x" * 600),
            id="fragments",
        ),
    ],
)
async def test_messages_over_the_limit_close_1009(server: Server, path: str, frames: bytes) -> None:
    with trio.fail_after(DEADLINE):
        async with await connect(server, path) as client:
            await client.send(frames)
            _, code, reason = await client.receive_until_close()
            assert (code, reason) == (1009, "message too big")
            # The server waits for our answer, and closes TCP after it.
            await client.send(client_frame(CLOSE, struct.pack("!H", 1009)))
            with pytest.raises(EOFError):
                await client.receive_frame()


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_a_message_of_exactly_the_limit_is_read(server: Server, path: str) -> None:
    padded = SUBSCRIBE[:-1] + b', "pad": "' + b"p" * LIMIT
    message = padded[: LIMIT - 2] + b'"}'
    assert len(message) == LIMIT
    with trio.fail_after(DEADLINE):
        async with await connect(server, path) as client:
            await client.send(client_frame(TEXT, message))
            await message_was_acted_on(server, client, path)


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_binary_messages_are_read_like_text(server: Server, path: str) -> None:
    with trio.fail_after(DEADLINE):
        async with await connect(server, path) as client:
            await client.send(client_frame(BINARY, SUBSCRIBE))
            await message_was_acted_on(server, client, path)


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_frames_arriving_byte_by_byte(server: Server, path: str) -> None:
    data = client_frame(PING, b"p") + client_frame(TEXT, SUBSCRIBE)
    with trio.fail_after(DEADLINE):
        async with await connect(server, path) as client:
            client.stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for byte in data:
                await client.send(bytes([byte]))
            assert await client.receive_frame() == (PONG, b"p")
            await message_was_acted_on(server, client, path)
