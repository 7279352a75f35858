"""The I/O-free layers of ``/api/ws``: server framing, the request head, the events query and
client messages. No sockets here (see test_events_endpoint.py for the rules that apply to the
tests with sockets; client frames are parsed by wsproto, tested on both endpoints in
tests/hardening/test_conformance.py).
"""

from __future__ import annotations

import struct

import pytest

from loop_server.serving import _rfc6455 as ws
from loop_server.serving._events_protocol import parse_events_query, parse_subscribe
from loop_server.serving._request_head import (
    HeadError,
    Sniff,
    head_end,
    parse_head,
    plain_response,
    sniff,
    switching_protocols,
    websocket_key,
)


def test_accept_key_matches_rfc_example() -> None:
    assert ws.accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(("size", "header_size"), [(0, 2), (125, 2), (126, 4), (65535, 4)])
def test_text_frame_headers(size: int, header_size: int) -> None:
    frame = ws.text_frame(b"a" * size)
    assert frame[0] == 0x81
    assert len(frame) == header_size + size


def test_large_frame_uses_64_bit_length() -> None:
    frame = ws.text_frame(b"a" * 65536)
    assert frame[1] == 127 and struct.unpack("!Q", frame[2:10])[0] == 65536


@pytest.mark.parametrize(
    ("buffer", "verdict"),
    [
        (b"", Sniff.NEED_MORE),
        (b"GE", Sniff.NEED_MORE),
        (b"GET /api/ws", Sniff.NEED_MORE),
        (b"GET /api/ws ", Sniff.EVENTS),
        (b"GET /api/ws?channels=a", Sniff.EVENTS),
        (b"GET /api/ws/terminal", Sniff.OTHER),
        (b"GET /api/wsx", Sniff.OTHER),
        (b"POST /api/ws", Sniff.OTHER),
        (b"PRI * HTTP/2.0\r\n", Sniff.OTHER),
        (b"GET /hello", Sniff.OTHER),
    ],
)
def test_sniff(buffer: bytes, verdict: Sniff) -> None:
    assert sniff(buffer, b"/api/ws") is verdict


def test_head_end() -> None:
    assert head_end(b"GET / HTTP/1.1\r\nHost: localhost\r\n") == -1
    assert head_end(b"GET / HTTP/1.1\r\n\r\nrest") == len(b"GET / HTTP/1.1\r\n\r\n")


UPGRADE = (
    b"GET /api/ws?channels=a,b&channels=c&token=t%20x HTTP/1.1\r\nHost: localhost\r\n"
    b"Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


def test_parse_head_and_upgrade() -> None:
    head = parse_head(UPGRADE)
    assert head.method == b"GET" and head.path == "/api/ws"
    assert head.query == {"channels": "a,b", "token": "t x"}
    assert (b"host", b"localhost") in head.headers
    assert websocket_key(head) == b"dGhlIHNhbXBsZSBub25jZQ=="


@pytest.mark.parametrize(
    "change",
    [
        (b"Upgrade: WebSocket\r\n", b""),
        (b"Connection: keep-alive, Upgrade\r\n", b"Connection: keep-alive\r\n"),
        (b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"),
        (b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Key: short"),
        (b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Key: !!!!"),
        (b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""),
    ],
)
def test_invalid_upgrades(change: tuple[bytes, bytes]) -> None:
    assert websocket_key(parse_head(UPGRADE.replace(*change))) is None


def test_parse_head_rejects_garbage() -> None:
    with pytest.raises(HeadError):
        parse_head(b"GET /api/ws HTTP/1.1\r\nno colon here\r\n\r\n")
    with pytest.raises(HeadError):
        parse_head(b"GET /api/ws HTTP/1.1\r\n")


def test_responses() -> None:
    response = plain_response(401, "unauthorized\n")
    assert response.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"Content-Type: text/plain; charset=utf-8\r\n" in response
    assert b"Access-Control-Allow-Origin: *\r\n" in response
    assert response.endswith(b"Content-Length: 13\r\nConnection: close\r\n\r\nunauthorized\n")
    answer = switching_protocols(b"dGhlIHNhbXBsZSBub25jZQ==")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in answer
    assert b"Sec-WebSocket-Extensions" not in answer


def test_events_query() -> None:
    request = parse_events_query({"channels": "a, b,,c", "since": "12", "hello": "1"})
    assert request.channels == ["a", " b", "", "c"]
    assert (request.since, request.hello, request.epoch) == (12, True, None)
    request = parse_events_query({"channels": "", "since": "x", "hello": "0", "epoch": "e"})
    assert (request.channels, request.since, request.hello, request.epoch) == (
        None,
        -1,
        False,
        "e",
    )
    assert parse_events_query({}).since is None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"type":"subscribe","channels":["a","b"]}', (True, ["a", "b"])),
        (b'{"type":"subscribe","channels":[]}', (True, None)),
        (b'{"type":"subscribe","channels":null}', (True, None)),
        (b'{"type":"subscribe"}', (True, None)),
        (b'{"TYPE":"subscribe","Channels":["x"]}', (True, ["x"])),
        (b'{"type":"Subscribe"}', (False, None)),
        (b'{"type":"ping"}', (False, None)),
        (b'{"channels":["a"]}', (False, None)),
        (b'{"type":"subscribe","channels":"a"}', (False, None)),
        (b'{"type":"subscribe","channels":[1]}', (False, None)),
        (b"[]", (False, None)),
        (b"\xff\xfe", (False, None)),
        (b"{", (False, None)),
    ],
)
def test_parse_subscribe(payload: bytes, expected: tuple[bool, list[str] | None]) -> None:
    assert parse_subscribe(payload) == expected
