"""One ``/api/ws/terminal`` connection after its handshake, on the WebSocket core.

The connection's nursery owns its tasks: the reader (client frames, each data message handed
to the ``TerminalConnection``), the session's streaming task (output as binary frames, started
by the ``TerminalConnection`` in this nursery), and the closer (our side of a closing
handshake, e.g. shutdown). This object is the ``TerminalSink`` they all write through; the
core serialises their writes, so frames never interleave, and only these tasks write the
socket.
"""

from __future__ import annotations

import logging

import trio

from loop_server import websocket_close
from loop_server.serving import _rfc6455
from loop_server.serving._websocket import WebSocket
from loop_server.terminal import MAX_OUTPUT_FRAME, TerminalConnection, TerminalServices

logger = logging.getLogger("loop_server.serving")


class TerminalSocket:
    def __init__(
        self,
        stream: trio.abc.Stream,
        services: TerminalServices,
        *,
        max_message_size: int,
        close_timeout: float,
    ) -> None:
        self._stream = stream
        self._services = services
        self._scope = trio.CancelScope()
        self._websocket = WebSocket(
            stream, self._scope, max_message_size=max_message_size, close_timeout=close_timeout
        )
        self._broken = False
        # Our side of the closing handshake (shutdown): what to send.
        self._close_requested = trio.Event()
        self._close: tuple[int, str] = (websocket_close.NORMAL, "")

    async def run(self, opening: bytes, leftover: bytes) -> None:
        """Serve the connection: ``opening`` (the 101 answer) first; ``leftover`` is what the
        client sent after its request head."""
        connection: TerminalConnection | None = None
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    connection = TerminalConnection(self._services, self, nursery)
                    await self._send(opening)
                    nursery.start_soon(self._closer)
                    await self._reader(connection, leftover)
                    nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                if connection is not None:
                    await connection.close()
            await trio.aclose_forcefully(self._stream)

    def begin_close(self, code: int, reason: str) -> None:
        """Start the closing handshake (shutdown: 1001). Idempotent."""
        if not self._close_requested.is_set():
            self._close = (code, reason)
            self._close_requested.set()

    # -- TerminalSink ---------------------------------------------------------------------

    async def send_text(self, payload: bytes) -> None:
        await self._send(_rfc6455.text_frame(payload))

    async def send_binary(self, payload: bytes) -> None:
        await self._send(_rfc6455.binary_frame(payload))

    async def send_output(self, payload: bytes) -> None:
        await self._send(_output_frames(payload))

    async def _send(self, frames: bytes) -> None:
        if self._broken:
            await trio.lowlevel.checkpoint()
            return
        try:
            await self._websocket.send(frames)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as err:
            # Logged once; the reader notices the peer is gone and ends the connection.
            self._broken = True
            logger.info("terminal ws: write failed: %s", err.__cause__ or err)

    # -- reading and closing --------------------------------------------------------------

    async def _reader(self, connection: TerminalConnection, leftover: bytes) -> None:
        websocket = self._websocket
        message = await websocket.receive_message(leftover)
        while message is not None:
            if not websocket.closing:
                await connection.handle_message(message)
            message = await websocket.receive_message()

    async def _closer(self) -> None:
        await self._close_requested.wait()
        await self._websocket.close(*self._close)


def _output_frames(payload: bytes) -> bytes:
    """Output as binary frames of at most ``MAX_OUTPUT_FRAME`` bytes, concatenated."""
    if len(payload) <= MAX_OUTPUT_FRAME:
        return _rfc6455.binary_frame(payload)
    view = memoryview(payload)
    return b"".join(
        _rfc6455.binary_frame(bytes(view[i : i + MAX_OUTPUT_FRAME]))
        for i in range(0, len(payload), MAX_OUTPUT_FRAME)
    )
