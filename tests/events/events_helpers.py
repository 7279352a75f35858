"""Helpers for the events tests: the ASGI app behind ``serve()`` and WebSocket clients that
do what trio-websocket will not (never read, vanish, send broken frames).

The rules every test here follows are in the docstrings of the test modules.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
from quart import request, websocket
from quart_trio import QuartTrio
from trio_websocket import WebSocketConnection, wrap_client_stream

from loop_server.events import EventsHub

DEADLINE = 10.0

#: ``start_server(hub=...)`` default: a fresh ``EventsHub`` (None means "no hub").
DEFAULT_HUB: Any = object()


def allow_all(headers: list[tuple[bytes, bytes]], query: dict[str, str]) -> bool:
    return True


def make_app() -> QuartTrio:
    """The tiny ASGI app behind the listener: enough routes to prove hypercorn still serves."""
    app = QuartTrio("events-tests")

    @app.get("/hello")
    async def hello() -> str:
        return "hello"

    @app.post("/echo")
    async def echo() -> bytes:
        body = await request.get_data(as_text=False)
        assert isinstance(body, bytes)
        return body

    @app.get("/peer")
    async def peer() -> str:
        # The client's port: two requests answering the same port shared one connection.
        client = request.scope.get("client")
        return str(client[1] if client else "")

    @app.websocket("/ws/echo")
    async def ws_echo() -> None:
        while True:
            message = await websocket.receive()
            await websocket.send(message)

    return app


@dataclass
class RunningServer:
    port: int
    hub: EventsHub | None
    shutdown: trio.Event = field(default_factory=trio.Event)
    finished: trio.Event = field(default_factory=trio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


StartServer = Callable[..., Awaitable[RunningServer]]


# -- a raw WebSocket client, for what trio-websocket will not do (never read, vanish, send
#    broken frames) ------------------------------------------------------------------------


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """A client→server frame (masked unless told otherwise)."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        header = bytes((first, mask_bit | length))
    elif length < 0x10000:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return header + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if length < 4096 else None
    if masked is None:
        repeated = (key * (length // 4 + 1))[:length]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
            length, "big"
        )
    return header + key + masked


class RawClient:
    """A WebSocket client on a bare socket: reads server frames only when asked."""

    def __init__(self, stream: trio.SocketStream, status: int, head: bytes, rest: bytes) -> None:
        self.stream = stream
        self.status = status
        self.head = head
        self._buffer = bytearray(rest)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive_frame(self) -> tuple[int, bytes]:
        """The next server frame as (opcode, payload); raises EOFError at end of stream."""
        while True:
            frame = self._parse()
            if frame is not None:
                return frame
            data = await self.stream.receive_some(1 << 16)
            if not data:
                raise EOFError
            self._buffer += data

    def _parse(self) -> tuple[int, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        opcode = buffer[0] & 0x0F
        assert not buffer[1] & 0x80, "server frames are never masked"
        length, offset = buffer[1] & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length, offset = struct.unpack("!H", buffer[2:4])[0], 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length, offset = struct.unpack("!Q", buffer[2:10])[0], 10
        if len(buffer) < offset + length:
            return None
        payload = bytes(buffer[offset : offset + length])
        del buffer[: offset + length]
        return opcode, payload

    async def receive_until_close(self) -> tuple[list[bytes], int | None, str]:
        """Every text payload until the close frame; returns them with its code and reason."""
        texts: list[bytes] = []
        while True:
            opcode, payload = await self.receive_frame()
            if opcode == 0x1:
                texts.append(payload)
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return texts, code, payload[2:].decode()

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stream.aclose()


async def raw_connect(
    port: int,
    resource: str,
    *,
    receive_buffer: int | None = None,
    headers: bytes = b"",
    upgrade: bool = True,
) -> RawClient:
    """Open a connection, send a handshake for ``resource`` and read the response head."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        # Before connect, so the window advertised to the server is small from the start.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    key = base64.b64encode(os.urandom(16))
    request = f"GET {resource} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
    if upgrade:
        request += (
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n"
        )
    await stream.send_all(request + headers + b"\r\n")
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(1 << 16)
        if not data:
            break
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return RawClient(stream, status, head, rest)


async def read_http_response(stream: trio.SocketStream) -> tuple[bytes, bytes]:
    """Read one response with a Content-Length body: (head, body)."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(1 << 16)
        assert data, "connection closed before the response head"
        buffer += data
    head, _, body = bytes(buffer).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    rest = bytearray(body)
    while len(rest) < length:
        data = await stream.receive_some(1 << 16)
        assert data, "connection closed inside the body"
        rest += data
    return head, bytes(rest[:length])


@asynccontextmanager
async def connect_ws(
    port: int, resource: str, **options: Any
) -> AsyncIterator[WebSocketConnection]:
    """A trio-websocket client whose TCP stream the test owns.

    trio-websocket's own ``open_websocket`` leaves the client socket open when the *server*
    starts the closing handshake (the client waits for the server's TCP close, and its
    ``aclose`` then returns early): closing the stream here keeps ResourceWarnings, which
    this suite turns into errors, about real leaks only.
    """
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        async with trio.open_nursery() as nursery:
            connection = await wrap_client_stream(nursery, stream, "127.0.0.1", resource, **options)
            try:
                yield connection
            finally:
                with trio.move_on_after(DEADLINE, shield=True):
                    await connection.aclose()
                    await stream.aclose()
    except BaseExceptionGroup as group:
        # One failure (a rejected handshake, a failed assertion) reads better unwrapped.
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise
    finally:
        await trio.aclose_forcefully(stream)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found.extend(_leaves(error))
        else:
            found.append(error)
    return found
