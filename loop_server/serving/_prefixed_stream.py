"""A socket stream whose first bytes were already read by the listener.

hypercorn's ``TCPServer`` takes the stream as it is: it probes ``do_handshake`` (absent here, so
it treats the connection as plain TCP), reads ``socket`` for the addresses, then calls
``receive_some``, ``send_all``, ``send_eof`` and ``aclose``. Those are all this wrapper has.
"""

from __future__ import annotations

import trio


class PrefixedStream(trio.abc.HalfCloseableStream):
    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

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
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()
