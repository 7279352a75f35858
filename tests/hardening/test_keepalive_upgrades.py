"""Every WebSocket upgrade takes the server's own path, whatever came before it on the
connection: the first request of a connection is read by the listener, later ones by
hypercorn, which hands a ``GET`` of a WebSocket path back (serving/_handover.py). Each case
compares a reused keep-alive connection with a fresh one, on both endpoints.

Rules: 127.0.0.1, port 0; every wait under an absolute deadline; nothing sleeps to wait for a
result.
"""

from __future__ import annotations

import base64
import os
import struct

import pytest
import trio

from tests.events.events_helpers import RawClient, client_frame, read_http_response
from tests.hardening.test_conformance import DEADLINE, ENDPOINTS, Server, closed_with, server

__all__ = ["server"]  # the fixture, shared with the conformance tests

TEXT, CLOSE = 0x1, 0x8


def upgrade(path: str, *, version: bytes = b"HTTP/1.1", extra: bytes = b"") -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET " + path.encode() + b" " + version + b"\r\nHost: 127.0.0.1\r\n"
        b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n" + extra + b"\r\n"
    )


HELLO = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def answer_to(server: Server, request: bytes, *, reused: bool) -> RawClient:
    """Send ``request`` on a fresh connection, or on one that first served ``GET /hello``;
    returns the client positioned after the answer's head."""
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    if reused:
        await stream.send_all(HELLO)
        head, body = await read_http_response(stream)
        assert head.startswith(b"HTTP/1.1 200") and body == b"hello"
    await stream.send_all(request)
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(1 << 16)
        assert data, "closed before an answer"
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    return RawClient(stream, int(head.split(b" ", 2)[1]), head, rest)


def header_names(head: bytes) -> set[bytes]:
    return {line.partition(b":")[0].strip().lower() for line in head.split(b"\r\n")[1:]}


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("reused", [False, True], ids=["fresh", "reused"])
async def test_permessage_deflate_is_never_negotiated(
    server: Server, path: str, reused: bool
) -> None:
    offer = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    with trio.fail_after(DEADLINE):
        async with await answer_to(server, upgrade(path, extra=offer), reused=reused) as client:
            assert client.status == 101
            assert b"sec-websocket-extensions" not in header_names(client.head)
            # A compressed frame (RSV1) is then a protocol error, as with no offer at all.
            await client.send(bytes([0xC1, 0x80]) + b"\x00" * 4)
            assert (await closed_with(client))[0] == 1002


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("reused", [False, True], ids=["fresh", "reused"])
async def test_an_unmasked_frame_is_a_protocol_error(
    server: Server, path: str, reused: bool
) -> None:
    with trio.fail_after(DEADLINE):
        async with await answer_to(server, upgrade(path), reused=reused) as client:
            assert client.status == 101
            await client.send(client_frame(TEXT, b"{}", mask=False))
            assert (await closed_with(client))[0] == 1002


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_an_http10_upgrade_gets_the_same_answer_either_way(server: Server, path: str) -> None:
    request = upgrade(path, version=b"HTTP/1.0")
    with trio.fail_after(DEADLINE):
        async with await answer_to(server, request, reused=False) as fresh:
            fresh_status, fresh_headers = fresh.status, header_names(fresh.head)
        async with await answer_to(server, request, reused=True) as reused:
            assert (reused.status, header_names(reused.head)) == (fresh_status, fresh_headers)


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_an_upgrade_pipelined_behind_a_request_waits_for_its_answer(
    server: Server, path: str
) -> None:
    with trio.fail_after(DEADLINE):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(HELLO + upgrade(path))
            head, body = await read_http_response(stream)
            assert head.startswith(b"HTTP/1.1 200") and body == b"hello"
            buffer = bytearray()
            while b"\r\n\r\n" not in buffer:
                buffer += await stream.receive_some(1 << 16)
            assert buffer.startswith(b"HTTP/1.1 101 ")
            client = RawClient(stream, 101, b"", bytes(buffer).partition(b"\r\n\r\n")[2])
            await client.send(client_frame(CLOSE, struct.pack("!H", 1000)))
            assert await closed_with(client) == (1000, "")


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_frames_sent_with_the_upgrade_are_not_lost(server: Server, path: str) -> None:
    ping = client_frame(0x9, b"early")
    with trio.fail_after(DEADLINE):
        async with await answer_to(server, upgrade(path) + ping, reused=True) as client:
            assert client.status == 101
            assert await client.receive_frame() == (0xA, b"early")
