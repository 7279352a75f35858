"""Raw WebSocket handshakes and frames, for what a client library will not do: upgrade on a
connection that already carried a request, read a 401 body, send oversized or fragmented
messages, and read the server's close code."""

from __future__ import annotations

import base64
import os
import struct

import trio

from tests.events.events_helpers import RawClient, read_http_response

OP_CLOSE = 0x8


def upgrade_request(path: str, headers: str = "", host: str = "127.0.0.1") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
        f"{headers}\r\n"
    ).encode()


async def open_upgrade(
    port: int, path: str, headers: str = "", *, reuse: bool = False, host: str = "127.0.0.1"
) -> tuple[RawClient, bytes]:
    """Send an upgrade for ``path`` (with ``Host: host``); the client and the response body
    (when not 101).

    ``reuse``: the upgrade goes on a connection that already carried a request, so hypercorn
    serves it instead of the listener's fast path."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    if reuse:
        await stream.send_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head, _ = await read_http_response(stream)
        assert head.startswith(b"HTTP/1.1 200"), head
    await stream.send_all(upgrade_request(path, headers, host))
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        assert data, f"closed before a response head: {buffer!r}"
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    client = RawClient(stream, int(head.split(b" ", 2)[1]), head, rest)
    body = b""
    if client.status != 101:
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = rest
        while len(body) < length:
            data = await stream.receive_some(65536)
            if not data:
                break
            body += data
    return client, body


async def close_code_after(client: RawClient, frames: list[bytes]) -> int | None:
    """Send ``frames`` (stopping if the server closes first) and return the close code the
    server answers with."""

    async def send_all() -> None:
        try:
            for frame in frames:
                await client.send(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the server closed while we were still sending: that is the point

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_all)
        while True:
            opcode, payload = await client.receive_frame()
            if opcode == OP_CLOSE:
                nursery.cancel_scope.cancel()
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
