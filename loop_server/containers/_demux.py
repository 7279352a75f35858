"""Docker's multiplexed attach stream (no TTY), parsed without I/O.

Each frame is an 8-byte header — stream type (1 stdout, 2 stderr), three zero bytes, payload
length as a big-endian uint32 — then the payload. Frames may arrive split across reads.
"""

from __future__ import annotations

import struct

STDOUT = 1
STDERR = 2
_HEADER = struct.Struct(">BxxxI")


class StreamDemux:
    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames: list[tuple[int, bytes]] = []
        offset = 0
        while len(self._buffer) - offset >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buffer, offset)
            end = offset + _HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append((kind, bytes(self._buffer[offset + _HEADER.size : end])))
            offset = end
        del self._buffer[:offset]
        return frames
