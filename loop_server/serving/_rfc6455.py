"""The WebSocket wire format (RFC 6455) as the events endpoint needs it: no I/O.

Server frames are unmasked, so a frame is built once and can be written to any number of
connections. Client frames are parsed incrementally by ``FrameParser``. No extension is ever
negotiated (no permessage-deflate, SPEC A.3), so every RSV bit must be zero.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_MESSAGE_TOO_BIG = 1009

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_CONTROL_PAYLOAD = 125
_MAX_CLOSE_REASON = _MAX_CONTROL_PAYLOAD - 2


def accept_key(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.strip() + _GUID).digest())


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, length))
    elif length < 0x10000:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


def text_frame(payload: bytes) -> bytes:
    return encode_frame(OP_TEXT, payload)


def pong_frame(payload: bytes) -> bytes:
    return encode_frame(OP_PONG, payload)


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame; ``CLOSE_NO_STATUS`` (1005) is never sent on the wire, it means an empty
    close payload."""
    if code == CLOSE_NO_STATUS:
        return encode_frame(OP_CLOSE, b"")
    # Cut the reason to what fits in a control frame without splitting a UTF-8 sequence.
    raw = reason.encode()[:_MAX_CLOSE_REASON].decode(errors="ignore").encode()
    return encode_frame(OP_CLOSE, struct.pack("!H", code) + raw)


def unmask(payload: bytes, mask: bytes) -> bytes:
    length = len(payload)
    if not length:
        return b""
    # One big-integer XOR instead of a Python loop over every byte.
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")


@dataclass(frozen=True, slots=True)
class DataMessage:
    """A complete text or binary message (fragments already joined)."""

    payload: bytes
    is_text: bool


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer's close frame; ``code`` is ``CLOSE_NO_STATUS`` when it carried none."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Violation:
    """The peer broke the protocol or a limit: close with ``code``. After a framing error the
    parser discards the rest of the input; after an oversized message it skips that message
    and keeps parsing, so the peer's answer to our close frame is still seen."""

    code: int
    reason: str


ClientEvent = DataMessage | Ping | Pong | CloseReceived | Violation


def _valid_close_code(code: int) -> bool:
    return (1000 <= code <= 1003) or (1007 <= code <= 1014) or (3000 <= code <= 4999)


class FrameParser:
    """Turns bytes from a client into ``ClientEvent``s."""

    def __init__(self, max_message_size: int) -> None:
        self._max_message_size = max_message_size
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_size = 0
        self._fragment_is_text = False
        self._in_message = False
        # Payload bytes still to discard from an oversized frame.
        self._skip = 0
        # Discarding the continuation frames of an oversized message.
        self._skipping_message = False
        self._broken = False

    def feed(self, data: bytes | bytearray) -> list[ClientEvent]:
        if self._broken:
            return []
        buffer = self._buffer
        buffer += data
        events: list[ClientEvent] = []
        position = 0
        end = len(buffer)
        while True:
            if self._skip:
                taken = min(self._skip, end - position)
                self._skip -= taken
                position += taken
                if self._skip:
                    break
            if end - position < 2:
                break
            first, second = buffer[position], buffer[position + 1]
            fin = bool(first & 0x80)
            opcode = first & 0x0F
            length = second & 0x7F
            header = 2
            if length == 126:
                header = 4
                if end - position < header:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
            elif length == 127:
                header = 10
                if end - position < header:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
            problem = self._check_header(first, second, fin, opcode, length)
            if problem is not None:
                events.append(problem)
                if problem.code != CLOSE_MESSAGE_TOO_BIG:
                    self._break()
                    return events
                # Skip this frame's payload (and mask) without buffering it.
                self._skip = length + 4
                position += header
                self._skipping_message = not fin
                continue
            if end - position < header + 4 + length:
                break
            mask = bytes(buffer[position + header : position + header + 4])
            start = position + header + 4
            payload = unmask(bytes(buffer[start : start + length]), mask)
            position = start + length
            event = self._frame(fin, opcode, payload)
            if event is not None:
                events.append(event)
                if isinstance(event, Violation):
                    self._break()
                    return events
        del buffer[:position]
        return events

    def _check_header(
        self, first: int, second: int, fin: bool, opcode: int, length: int
    ) -> Violation | None:
        if first & 0x70:
            return Violation(CLOSE_PROTOCOL_ERROR, "reserved bits set")
        if not second & 0x80:
            return Violation(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        if length >> 63:
            return Violation(CLOSE_PROTOCOL_ERROR, "frame length out of range")
        if opcode >= 0x8:
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                return Violation(CLOSE_PROTOCOL_ERROR, "unknown opcode")
            if not fin or length > _MAX_CONTROL_PAYLOAD:
                return Violation(CLOSE_PROTOCOL_ERROR, "invalid control frame")
            return None
        if opcode == OP_CONTINUATION:
            if self._skipping_message:
                # Rest of a message already rejected as too big: skip it as well.
                self._skipping_message = not fin
                return Violation(CLOSE_MESSAGE_TOO_BIG, "message too big")
            if not self._in_message:
                return Violation(CLOSE_PROTOCOL_ERROR, "continuation without a message")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._in_message:
                return Violation(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
        else:
            return Violation(CLOSE_PROTOCOL_ERROR, "unknown opcode")
        if self._fragment_size + length > self._max_message_size:
            self._fragments = []
            self._fragment_size = 0
            self._in_message = False
            return Violation(CLOSE_MESSAGE_TOO_BIG, "message too big")
        return None

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> ClientEvent | None:
        if opcode == OP_PING:
            return Ping(payload)
        if opcode == OP_PONG:
            return Pong(payload)
        if opcode == OP_CLOSE:
            return _parse_close(payload)
        if opcode != OP_CONTINUATION:
            self._fragment_is_text = opcode == OP_TEXT
        if fin and not self._in_message:
            return DataMessage(payload, self._fragment_is_text)
        self._fragments.append(payload)
        self._fragment_size += len(payload)
        self._in_message = not fin
        if not fin:
            return None
        message = b"".join(self._fragments)
        self._fragments = []
        self._fragment_size = 0
        return DataMessage(message, self._fragment_is_text)

    def _break(self) -> None:
        self._broken = True
        self._buffer = bytearray()
        self._fragments = []


def _parse_close(payload: bytes) -> CloseReceived | Violation:
    if not payload:
        return CloseReceived(CLOSE_NO_STATUS, "")
    if len(payload) == 1:
        return Violation(CLOSE_PROTOCOL_ERROR, "invalid close payload")
    code = int.from_bytes(payload[:2], "big")
    if not _valid_close_code(code):
        return Violation(CLOSE_PROTOCOL_ERROR, "invalid close code")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        return Violation(CLOSE_INVALID_PAYLOAD, "invalid close reason")
    return CloseReceived(code, reason)
