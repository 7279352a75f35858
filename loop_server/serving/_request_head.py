"""The first request on a connection, before anyone owns it: no I/O.

The listener looks at the first bytes of each connection to decide who serves it. Only a
``GET`` of the events path needs its whole head read here; anything else is recognised after a
few bytes and handed to hypercorn untouched, so hypercorn's own limits and timeouts apply to it.
"""

from __future__ import annotations

import base64
import enum
import http
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

import h11

from loop_server.bearer import challenge
from loop_server.origin_policy import ANY_ORIGIN, Headers, header_lines
from loop_server.plain_text import TEXT_HEADERS
from loop_server.serving import _rfc6455


class Sniff(enum.Enum):
    NEED_MORE = enum.auto()
    EVENTS = enum.auto()
    OTHER = enum.auto()


def sniff(buffer: bytes | bytearray, path: bytes) -> Sniff:
    """Whether the connection's first request is ``GET <path>`` (optionally with a query)."""
    prefix = b"GET " + path
    if len(buffer) <= len(prefix):
        return Sniff.NEED_MORE if prefix.startswith(buffer) else Sniff.OTHER
    if buffer.startswith(prefix) and buffer[len(prefix)] in b" ?":
        return Sniff.EVENTS
    return Sniff.OTHER


def sniff_paths(buffer: bytes | bytearray, paths: Sequence[bytes]) -> tuple[Sniff, int]:
    """``sniff`` for several paths: ``(Sniff.EVENTS, i)`` when the first request is a ``GET``
    of ``paths[i]`` (a path served on the socket), ``(Sniff.OTHER, -1)`` once it cannot be any
    of them, ``(Sniff.NEED_MORE, -1)`` until then."""
    undecided = False
    for index, path in enumerate(paths):
        verdict = sniff(buffer, path)
        if verdict is Sniff.EVENTS:
            return verdict, index
        undecided = undecided or verdict is Sniff.NEED_MORE
    return (Sniff.NEED_MORE if undecided else Sniff.OTHER), -1


def head_end(buffer: bytes | bytearray) -> int:
    """Offset just past the blank line ending the head, or -1 while it is incomplete."""
    index = buffer.find(b"\r\n\r\n")
    return -1 if index < 0 else index + 4


class HeadError(Exception):
    """The head is not a valid HTTP/1.1 request."""


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: bytes
    path: str
    query: dict[str, str]
    #: Names lower-cased, in the order received.
    headers: list[tuple[bytes, bytes]]

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_tokens(self, name: bytes) -> set[bytes]:
        """Comma-separated tokens of every ``name`` header, lower-cased."""
        tokens: set[bytes] = set()
        for key, value in self.headers:
            if key == name:
                tokens.update(token.strip().lower() for token in value.split(b","))
        return tokens


def parse_head(raw: bytes) -> RequestHead:
    """Parse a complete head (through the blank line)."""
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=len(raw) + 1)
    try:
        connection.receive_data(raw)
        event = connection.next_event()
    except h11.RemoteProtocolError as error:
        raise HeadError(str(error)) from None
    if not isinstance(event, h11.Request):
        raise HeadError("incomplete request head")
    return head_from_request(event)


def head_from_request(event: h11.Request) -> RequestHead:
    """The head of a request h11 has parsed (ours, or hypercorn's on a reused connection)."""
    target = event.target.decode("latin-1")
    path, _, query_string = target.partition("?")
    query: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        # Go's Query().Get: the first value wins.
        query.setdefault(key, value)
    return RequestHead(
        method=bytes(event.method),
        path=path,
        query=query,
        headers=[(bytes(name), bytes(value)) for name, value in event.headers],
    )


def websocket_key(head: RequestHead) -> bytes | None:
    """The client's ``Sec-WebSocket-Key`` when ``head`` is a valid RFC 6455 upgrade."""
    if head.method != b"GET":
        return None
    if b"websocket" not in head.header_tokens(b"upgrade"):
        return None
    if b"upgrade" not in head.header_tokens(b"connection"):
        return None
    if b"13" not in head.header_tokens(b"sec-websocket-version"):
        return None
    key = head.header(b"sec-websocket-key")
    if key is None or not valid_websocket_key(key):
        return None
    return key.strip()


def valid_websocket_key(key: bytes) -> bool:
    """``Sec-WebSocket-Key`` must be the base64 of 16 bytes (RFC 6455 §4.2.1; gorilla checks)."""
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except ValueError:
        return False


#: gorilla's refusal of a request that is not a valid upgrade says which version it speaks.
VERSION_HEADER = (b"sec-websocket-version", b"13")


def plain_response(
    status: int, body: str, extra_headers: Headers = (), *, cors: Headers = ANY_ORIGIN
) -> bytes:
    """A complete ``http.Error``-style response (Go's ``http.Error``); the connection closes
    after it. ``cors``: the CORS headers the origin policy gave this request."""
    payload = body.encode()
    phrase = http.HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {phrase}\r\n".encode()
        + header_lines((*TEXT_HEADERS, *cors, *challenge(status), *extra_headers))
        + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
        + payload
    )


def switching_protocols(key: bytes) -> bytes:
    """The 101 answer. No subprotocol and no extension is ever accepted."""
    return (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + _rfc6455.accept_key(key) + b"\r\n\r\n"
    )
