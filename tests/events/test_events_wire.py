"""The I/O-free layers of ``/api/ws``: WebSocket framing, the request head, the events query
and client messages. No sockets here (see test_events_endpoint.py for the rules that apply to
the tests with sockets).
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
from tests.events.events_helpers import client_frame

LIMIT = 1 << 20


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


def test_close_frame() -> None:
    assert ws.close_frame(4008, "slow consumer") == b"\x88\x0f\x0f\xa8slow consumer"
    assert ws.close_frame(ws.CLOSE_NO_STATUS) == b"\x88\x00"
    # The reason is cut to fit a control frame, never inside a UTF-8 sequence.
    frame = ws.close_frame(1000, "é" * 100)
    assert len(frame) <= 2 + 125
    frame[4:].decode()


def test_unmask_roundtrip() -> None:
    payload = bytes(range(256)) * 3
    frame = client_frame(ws.OP_BINARY, payload)
    assert ws.unmask(frame[8:], frame[4:8]) == payload
    assert ws.unmask(b"", b"abcd") == b""


def test_parser_data_ping_pong_close_byte_by_byte() -> None:
    parser = ws.FrameParser(LIMIT)
    stream = (
        client_frame(ws.OP_TEXT, b'{"type":"subscribe"}')
        + client_frame(ws.OP_BINARY, b"\x00\x01")
        + client_frame(ws.OP_PING, b"p")
        + client_frame(ws.OP_PONG, b"")
        + client_frame(ws.OP_CLOSE, struct.pack("!H", 1000) + b"bye")
    )
    events: list[ws.ClientEvent] = []
    for byte in stream:
        events.extend(parser.feed(bytes([byte])))
    assert events == [
        ws.DataMessage(b'{"type":"subscribe"}', True),
        ws.DataMessage(b"\x00\x01", False),
        ws.Ping(b"p"),
        ws.Pong(b""),
        ws.CloseReceived(1000, "bye"),
    ]


def test_parser_medium_and_large_lengths() -> None:
    parser = ws.FrameParser(LIMIT)
    medium, large = b"m" * 300, b"L" * 70000
    events = parser.feed(client_frame(ws.OP_TEXT, medium) + client_frame(ws.OP_TEXT, large))
    assert events == [ws.DataMessage(medium, True), ws.DataMessage(large, True)]


def test_parser_fragments_with_interleaved_control() -> None:
    parser = ws.FrameParser(LIMIT)
    events = parser.feed(
        client_frame(ws.OP_TEXT, b"ab", fin=False)
        + client_frame(ws.OP_PING, b"")
        + client_frame(ws.OP_CONTINUATION, b"cd", fin=False)
        + client_frame(ws.OP_CONTINUATION, b"ef")
    )
    assert events == [ws.Ping(b""), ws.DataMessage(b"abcdef", True)]


def test_parser_empty_close_means_no_status() -> None:
    parser = ws.FrameParser(LIMIT)
    assert parser.feed(client_frame(ws.OP_CLOSE, b"")) == [ws.CloseReceived(ws.CLOSE_NO_STATUS, "")]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (client_frame(ws.OP_TEXT, b"x", mask=False), 1002),
        (bytes([0xC1, 0x80]) + b"\x00" * 4, 1002),  # RSV1 set: no extension was agreed
        (client_frame(0x3, b""), 1002),  # reserved data opcode
        (client_frame(0xB, b""), 1002),  # reserved control opcode
        (client_frame(ws.OP_PING, b"x" * 126), 1002),
        (client_frame(ws.OP_PING, b"", fin=False), 1002),
        (client_frame(ws.OP_CONTINUATION, b"x"), 1002),
        (
            client_frame(ws.OP_TEXT, b"a", fin=False) + client_frame(ws.OP_TEXT, b"b"),
            1002,
        ),
        (client_frame(ws.OP_CLOSE, b"\x03"), 1002),
        (client_frame(ws.OP_CLOSE, struct.pack("!H", 1005)), 1002),
        (client_frame(ws.OP_CLOSE, struct.pack("!H", 999)), 1002),
        (client_frame(ws.OP_CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
        (bytes([0x81, 0xFF]) + b"\x80" + b"\x00" * 7, 1002),  # 64-bit length with MSB set
    ],
)
def test_parser_violations(data: bytes, code: int) -> None:
    parser = ws.FrameParser(LIMIT)
    events = parser.feed(data)
    assert isinstance(events[-1], ws.Violation) and events[-1].code == code
    # After a framing error nothing more is parsed.
    assert parser.feed(client_frame(ws.OP_PING, b"")) == []


def test_parser_oversized_message_is_skipped_and_parsing_goes_on() -> None:
    parser = ws.FrameParser(100)
    events = parser.feed(client_frame(ws.OP_TEXT, b"x" * 101)[:50])
    assert events == [ws.Violation(ws.CLOSE_MESSAGE_TOO_BIG, "message too big")]
    rest = client_frame(ws.OP_TEXT, b"x" * 101)[50:]
    assert parser.feed(rest + client_frame(ws.OP_CLOSE, struct.pack("!H", 1009))) == [
        ws.CloseReceived(1009, "")
    ]


def test_parser_limit_counts_all_fragments() -> None:
    parser = ws.FrameParser(100)
    events = parser.feed(
        client_frame(ws.OP_TEXT, b"x" * 60, fin=False)
        + client_frame(ws.OP_CONTINUATION, b"x" * 60, fin=False)
        + client_frame(ws.OP_CONTINUATION, b"x" * 10)
        + client_frame(ws.OP_TEXT, b"ok")
    )
    assert events[0] == ws.Violation(ws.CLOSE_MESSAGE_TOO_BIG, "message too big")
    assert events[-1] == ws.DataMessage(b"ok", True)
    # Exactly the limit is fine.
    assert ws.FrameParser(100).feed(client_frame(ws.OP_TEXT, b"x" * 100)) == [
        ws.DataMessage(b"x" * 100, True)
    ]


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
