"""One attached client of a session: a bounded queue of output chunks (SPEC §6).

The session's pump pushes every chunk to every viewer without waiting. A viewer whose reader
falls behind loses its *oldest* queued chunks once its queue is over its bounds, so neither the
pump nor any other viewer ever waits for it; the ring buffer still has everything recent.

A viewer may also have a *direct writer*: when nothing is queued and its reader is parked
waiting, a small chunk is offered to the writer first, which puts it on the client's socket at
once if the socket takes it without waiting. A keystroke's echo then reaches the client with no
task switch in between. Bulk output (big chunks) still goes through the queue, where the
reader takes whatever has piled up as one batch: fewer frames and system calls for the server
and for the client when output floods (docs/terminal.md, "Performance").
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable

import trio

log = logging.getLogger("loop_server.terminal")

#: Chunks up to this size may be written directly (echo, prompts, short redraws); a pty hands
#: over bulk output in reads of about 4 KiB.
DIRECT_WRITE_MAX = 1024


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
        self._direct: Callable[[bytes], bool] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued_bytes(self) -> int:
        return self._size

    def set_direct_writer(self, writer: Callable[[bytes], bool] | None) -> None:
        """``writer(chunk)`` writes a chunk without waiting, or returns False when it cannot
        now (the chunk is then queued)."""
        self._direct = writer

    def push(self, chunk: bytes) -> None:
        """Queue ``chunk``, or hand it to the direct writer; never blocks. Ignored once
        closed."""
        if self._closed:
            return
        chunks = self._chunks
        # Only when the reader is idle: with anything queued or being sent, writing this
        # chunk now would overtake older output.
        if (
            self._direct is not None
            and len(chunk) <= DIRECT_WRITE_MAX
            and not chunks
            and len(self._lot)
            and self._direct(chunk)
        ):
            return
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
