"""A socket stream whose first bytes were already read by the listener.

hypercorn's ``TCPServer`` takes the stream as it is: it probes ``do_handshake`` (absent here, so
it treats the connection as plain TCP), reads ``socket`` for the addresses, then calls
``receive_some``, ``send_all``, ``send_eof`` and ``aclose``. Those are all this wrapper has.
When the connection is handed back to the listener (``_handover``), ``release`` makes hypercorn's
closing of the stream a no-op: the socket has a new owner. Its writes go through the
listener's ``WriteGuard`` (a stall timeout, and a cut at the end of
the graceful shutdown), since hypercorn shields them from every cancellation of its own.
"""

from __future__ import annotations

import trio

from loop_server.serving._write_guard import WriteGuard


class PrefixedStream(trio.abc.HalfCloseableStream):
    def __init__(self, stream: trio.SocketStream, prefix: bytes, writes: WriteGuard) -> None:
        self._stream = stream
        self._prefix = prefix
        self._writes = writes
        self._released = False

    def release(self) -> bytes:
        """Hand the socket over: later ``send_eof``/``aclose`` calls do nothing. Returns the
        bytes of the prefix hypercorn has not read yet."""
        self._released = True
        rest, self._prefix = self._prefix, b""
        return rest

    @property
    def released(self) -> bool:
        return self._released

    @property
    def socket(self) -> trio.socket.SocketType:
        return self._stream.socket

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            await trio.lowlevel.checkpoint()
            if max_bytes is None or max_bytes >= len(self._prefix):
                data, self._prefix = self._prefix, b""
            else:
                data, self._prefix = self._prefix[:max_bytes], self._prefix[max_bytes:]
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._writes.send_all(self._stream, data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        if self._released:
            await trio.lowlevel.checkpoint()
            return
        await self._stream.send_eof()

    async def aclose(self) -> None:
        if self._released:
            await trio.lowlevel.checkpoint()
            return
        await self._stream.aclose()
