"""The most recent output of a session, replayed to every viewer that attaches (SPEC §6).

A fixed-capacity circular buffer: a write costs a copy of the written bytes whatever the fill
level (no shifting of the whole buffer per chunk), and the storage grows only as far as the
output does, so a session that printed a prompt holds a few bytes, not the full capacity.
"""

from __future__ import annotations


class RingBuffer:
    def __init__(self, capacity: int = 1 << 20) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._data = bytearray()
        # Once full, the index of the oldest byte (and where the next write goes).
        self._start = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self._data)

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        view = memoryview(chunk)
        size = len(view)
        capacity = self._capacity
        if size >= capacity:
            # Only the tail of an oversized write survives.
            self._data = bytearray(view[size - capacity :])
            self._start = 0
            return
        room = capacity - len(self._data)
        if room > 0:
            taken = min(room, size)
            self._data += view[:taken]
            view = view[taken:]
            size -= taken
            if not size:
                return
        start = self._start
        first = min(size, capacity - start)
        self._data[start : start + first] = view[:first]
        if size > first:
            self._data[: size - first] = view[first:]
        self._start = (start + size) % capacity

    def snapshot(self) -> bytes:
        """A copy of the retained bytes, oldest first."""
        start = self._start
        if start == 0:
            return bytes(self._data)
        return bytes(self._data[start:]) + bytes(self._data[:start])
