"""One attached client of a session: a bounded queue of output chunks (SPEC §6).

The session's pump pushes every chunk to every viewer without waiting. A viewer whose reader
falls behind loses its *oldest* queued chunks once its queue is over its bounds, so neither the
pump nor any other viewer ever waits for it; the ring buffer still has everything recent.

The pump never writes a socket: the connection's streaming task takes whatever has piled up as
one batch (one frame and one system call however many reads the pump made meanwhile), in the
connection's own nursery (docs/terminal.md, "Performance").
"""

from __future__ import annotations

import collections
import logging

import trio

log = logging.getLogger("loop_server.terminal")


class Viewer:
    """Satisfies ``protocols.TerminalViewer``."""

    def __init__(self, session_id: str, *, max_bytes: int, max_chunks: int) -> None:
        self.session_id = session_id
        self._max_bytes = max_bytes
        self._max_chunks = max_chunks
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._closed = False
        self._lot = trio.lowlevel.ParkingLot()
        #: Output this viewer lost because it fell behind (bytes, and chunks).
        self.dropped_bytes = 0
        self.dropped_chunks = 0
        self._warned = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued_bytes(self) -> int:
        return self._size

    def push(self, chunk: bytes) -> None:
        """Queue ``chunk``; never blocks. Ignored once closed."""
        if self._closed:
            return
        chunks = self._chunks
        chunks.append(chunk)
        self._size += len(chunk)
        while len(chunks) > 1 and (self._size > self._max_bytes or len(chunks) > self._max_chunks):
            lost = chunks.popleft()
            self._size -= len(lost)
            self.dropped_bytes += len(lost)
            self.dropped_chunks += 1
            if not self._warned:
                # Once per viewer: a stalled browser tab must not flood the log.
                self._warned = True
                log.warning("slow consumer, dropped output session=%s", self.session_id)
        self._lot.unpark_all()

    def close(self, *, discard: bool = False) -> None:
        """End the stream: the reader gets what is queued (nothing when ``discard``), then
        ``trio.EndOfChannel``. Idempotent."""
        self._closed = True
        if discard:
            self._chunks.clear()
            self._size = 0
        self._lot.unpark_all()

    def receive_output_nowait(self) -> bytes:
        """Every queued chunk, joined; ``trio.WouldBlock`` when none is queued yet,
        ``trio.EndOfChannel`` once closed and drained."""
        chunks = self._chunks
        if not chunks:
            if self._closed:
                raise trio.EndOfChannel
            raise trio.WouldBlock
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        return data

    async def receive_output(self) -> bytes:
        """Every queued chunk, joined into one (one frame and one write for the connection,
        however many reads the pump made meanwhile); waits while none is queued."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                data = self.receive_output_nowait()
            except trio.WouldBlock:
                await self._lot.park()
                continue
            # Taken: yield without a cancellation point, so the data cannot be lost.
            await trio.lowlevel.cancel_shielded_checkpoint()
            return data
