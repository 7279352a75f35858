"""Server→client WebSocket frames (RFC 6455 §5.2), built once and shared: no I/O.

Server frames are unmasked, so a frame is the same bytes for every connection: an event is
framed once and the same object is written to each subscriber. Client frames are parsed by
wsproto in ``_websocket``; no extension is ever negotiated (no permessage-deflate, SPEC A.3).
"""

from __future__ import annotations

import base64
import hashlib
import struct

OP_TEXT = 0x1
OP_BINARY = 0x2

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


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


def binary_frame(payload: bytes) -> bytes:
    return encode_frame(OP_BINARY, payload)
