"""The one WebSocket connection core, for ``/api/ws`` and ``/api/ws/terminal`` alike.

After the handshake, wsproto (the sans-I/O engine trio-websocket is built on) parses every
client frame and runs the closing handshake: fragmentation with interleaved control frames,
UTF-8 validation of text (across fragments too: 1007), reserved bits and opcodes (1002), close
codes and reasons. This module adds the message size limit (1009) and the Trio layer that moves
bytes.

Server data frames do not go through wsproto: they are built once (``_rfc6455``) and the same
bytes are written to every connection. Every write of the connection, whichever of its tasks
makes it, takes one lock, so frames never interleave; nothing outside the connection's own
tasks writes its socket.
"""

from __future__ import annotations

import contextlib
import logging

import trio
from wsproto import ConnectionType
from wsproto import connection as ws_connection
from wsproto import events as ws_events

from loop_server import websocket_close
from loop_server.streams import RECEIVE_SIZE, receive_eagerly, write_nowait

logger = logging.getLogger("loop_server.serving")


class WebSocket:
    """One connection's frames, both ways.

    ``scope`` is the connection's cancel scope: once a closing handshake starts (from either
    side, or ``close`` from any task), the scope gets a deadline of ``close_timeout``, so a peer
    that stops reading or never answers cannot hold the connection.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        scope: trio.CancelScope,
        *,
        max_message_size: int,
        close_timeout: float,
    ) -> None:
        self._stream = stream
        self._scope = scope
        self._max_message_size = max_message_size
        self._close_timeout = close_timeout
        self._protocol = ws_connection.Connection(ConnectionType.SERVER)
        self._lock = trio.Lock()
        self._parts: list[bytes] = []
        self._size = 0
        self._too_big = False
        self._close_sent = False
        #: Set once nothing more can be written (close frame sent, or the peer is gone).
        self.closing = False

    # -- writing --------------------------------------------------------------------------

    async def send(self, frames: bytes) -> None:
        """Write already-framed server frames. Dropped (with a checkpoint) once a close frame
        has gone out: no data frame may follow it. Raises ``trio.BrokenResourceError`` or
        ``trio.ClosedResourceError`` when the peer is gone."""
        if self._close_sent:
            await trio.lowlevel.checkpoint()
            return
        await self._write(frames)

    async def _write(self, data: bytes) -> None:
        lock = self._lock
        if lock.locked():
            await lock.acquire()
        else:
            lock.acquire_nowait()  # free: no task switch on the latency-bound paths
        try:
            # One non-blocking write first (this task's own socket, under its lock): a
            # keystroke's echo or a small batch then costs no scheduler pass.
            written = write_nowait(self._stream, data)
            if written < len(data):
                await self._stream.send_all(memoryview(data)[max(written, 0) :])
        finally:
            lock.release()

    async def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake (or answer the peer's): one close frame, then wait
        for ``receive_message`` to see the peer's answer, bounded by the close timeout.
        Harmless when a close frame was already sent; a peer that is gone is not an error."""
        self._start_closing()
        if self._close_sent:
            await trio.lowlevel.checkpoint()
            return
        self._close_sent = True
        frame = self._protocol.send(ws_events.CloseConnection(code=code, reason=reason))
        try:
            await self._write(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._scope.cancel()

    def _start_closing(self) -> None:
        if not self.closing:
            self.closing = True
            self._scope.deadline = min(
                self._scope.deadline, trio.current_time() + self._close_timeout
            )

    # -- reading --------------------------------------------------------------------------

    async def receive_message(self, leftover: bytes = b"") -> bytes | None:
        """The next complete data message (text as UTF-8 bytes), or None once the connection
        is over: closing handshake done, protocol violation answered, or peer gone. Pings,
        pongs and the peer's close are handled here."""
        protocol = self._protocol
        if leftover:
            protocol.receive_data(leftover)
        while True:
            for event in protocol.events():
                if isinstance(event, (ws_events.TextMessage, ws_events.BytesMessage)):
                    message = self._collect(event)
                    if message is not None:
                        return message
                elif isinstance(event, ws_events.CloseConnection):
                    await self._closed_by(event)
                    return None
                elif (
                    isinstance(event, ws_events.Ping)
                    and protocol.state is ws_connection.ConnectionState.OPEN
                ):
                    await self.send(protocol.send(event.response()))
            if self._too_big and not self._close_sent:
                await self.close(websocket_close.MESSAGE_TOO_BIG, "message too big")
            try:
                data = await receive_eagerly(self._stream, RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self.closing = True
                return None
            protocol.receive_data(data)
            # Bytes that arrive together are acted on together; the checkpoint lets a flood
            # of input take turns with everything else.
            await trio.lowlevel.checkpoint()

    def _collect(self, event: ws_events.TextMessage | ws_events.BytesMessage) -> bytes | None:
        if self._close_sent:
            return None  # closing: only the peer's close frame matters now
        data = event.data
        part = data.encode() if isinstance(data, str) else bytes(data)
        self._size += len(part)
        if self._size > self._max_message_size:
            self._too_big = True
            self._parts = []
            return None
        if not event.message_finished:
            self._parts.append(part)
            return None
        if self._parts:
            self._parts.append(part)
            part = b"".join(self._parts)
            self._parts = []
        self._size = 0
        return part

    async def _closed_by(self, event: ws_events.CloseConnection) -> None:
        state = self._protocol.state
        if state is ws_connection.ConnectionState.REMOTE_CLOSING:
            # The peer started it: echo its code (RFC 6455 §5.5.1), then the server closes TCP.
            self._start_closing()
            if not self._close_sent:
                self._close_sent = True
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    # The code only: the reason was the peer's to give.
                    reply = ws_events.CloseConnection(code=event.code)
                    await self._write(self._protocol.send(reply))
        elif state is not ws_connection.ConnectionState.CLOSED:
            # wsproto reports a frame it refused as a close event of its own, with the code
            # RFC 6455 asks for (1002, 1007): fail the connection with it.
            logger.info("websocket protocol error: %s (%s)", event.reason, int(event.code))
            await self.close(int(event.code), event.reason or "")
