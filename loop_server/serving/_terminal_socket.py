"""One ``/api/ws/terminal`` connection after its handshake: the Trio layer that moves bytes.

The reader parses client frames and hands each data message to the ``TerminalConnection``
(which answers through this object as its ``TerminalSink``); the closer bounds a closing
handshake, whoever starts it. Writes (status messages, output frames, pongs, the close frame)
take turns on one lock, so frames never interleave. Output is written as one binary frame per
batch the viewer hands over, so a flood of small reads from the exec costs one frame and one
system call per batch.

Writes try the socket first with one non-blocking ``os.write`` (no task switch; what it does
not take goes out with ``send_all``), and an idle viewer hands each chunk to
``write_output_now``, so the pump puts a keystroke's echo on the socket itself. Keystroke echo
is a round trip of a fraction of a millisecond; each task switch saved is visible in it
(docs/benchmarks.md, "Terminal").
"""

from __future__ import annotations

import logging

import trio

from loop_server.serving import _rfc6455
from loop_server.terminal import MAX_OUTPUT_FRAME, TerminalConnection, TerminalServices
from loop_server.terminal._nowait import receive_eagerly, write_nowait

logger = logging.getLogger("loop_server.serving")

_RECEIVE_SIZE = 65536


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
        self._parser = _rfc6455.FrameParser(max_message_size)
        self._close_timeout = close_timeout
        self._lock = trio.Lock()
        self._broken = False
        self._cancel_scope = trio.CancelScope()
        # Our side of the closing handshake: what to send, and whether it has been sent.
        self._close_requested = trio.Event()
        self._close_code = _rfc6455.CLOSE_NORMAL
        self._close_reason = ""
        self._close_sent = False
        self._peer_closed = trio.Event()
        # Frame bytes a direct write left unwritten: they go out before anything else.
        self._remainder = b""
        self._nursery: trio.Nursery | None = None

    async def run(self, opening: bytes, leftover: bytes) -> None:
        """Serve the connection: ``opening`` (the 101 answer) first; ``leftover`` is what the
        client sent after its request head."""
        connection: TerminalConnection | None = None
        try:
            with self._cancel_scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    connection = TerminalConnection(self._services, self, nursery)
                    await self._send(opening)
                    nursery.start_soon(self._reader, connection, leftover)
                    nursery.start_soon(self._closer)
        finally:
            self._nursery = None
            self._broken = True  # no direct write from here on
            with trio.CancelScope(shield=True):
                if connection is not None:
                    await connection.close()
            await trio.aclose_forcefully(self._stream)

    def begin_close(self, code: int, reason: str) -> None:
        """Start the closing handshake (shutdown: 1001). Idempotent."""
        if self._close_requested.is_set():
            return
        self._close_code, self._close_reason = code, reason
        self._close_requested.set()

    # -- TerminalSink ---------------------------------------------------------------------

    async def send_text(self, payload: bytes) -> None:
        await self._send_data(_rfc6455.text_frame(payload))

    async def send_binary(self, payload: bytes) -> None:
        await self._send_data(_rfc6455.encode_frame(_rfc6455.OP_BINARY, payload))

    async def send_output(self, payload: bytes) -> None:
        await self._send_data(_output_frames(payload))

    async def _send_data(self, frame: bytes) -> None:
        if self._close_sent:
            await trio.lowlevel.checkpoint()  # no data frame may follow a close frame
            return
        await self._send(frame)

    def write_output_now(self, payload: bytes) -> bool:
        """Write output frames without waiting, when nothing else is being written; False
        when that is not possible now. Called by the session's pump, outside this
        connection's tasks."""
        if self._broken or self._close_sent or self._lock.locked() or self._remainder:
            return False
        nursery = self._nursery
        if nursery is None:
            return False
        data = _output_frames(payload)
        written = write_nowait(self._stream, data)
        if written < 0:
            return False
        if written < len(data):
            # The socket's buffer is full: a task finishes the job, before any other write.
            self._remainder = data[written:]
            nursery.start_soon(self._send, b"")
        return True

    async def _send(self, data: bytes) -> None:
        if self._broken:
            await trio.lowlevel.checkpoint()
            return
        lock = self._lock
        if lock.locked():
            await lock.acquire()
        else:
            lock.acquire_nowait()  # free: take it without a task switch
        try:
            if self._remainder:
                data, self._remainder = self._remainder + data, b""
            if not data:
                return
            written = write_nowait(self._stream, data)
            if written < len(data):
                await self._stream.send_all(memoryview(data)[max(written, 0) :])
        except (trio.BrokenResourceError, trio.ClosedResourceError) as err:
            # Logged once; the reader notices the peer is gone and ends the connection.
            self._broken = True
            logger.info("terminal ws: write failed: %s", err.__cause__ or err)
        finally:
            lock.release()

    # -- reading and closing --------------------------------------------------------------

    async def _reader(self, connection: TerminalConnection, leftover: bytes) -> None:
        data: bytes | bytearray = leftover
        try:
            while True:
                if data:
                    for event in self._parser.feed(data):
                        if await self._handle(connection, event):
                            return
                    await trio.lowlevel.checkpoint()
                data = await receive_eagerly(self._stream, _RECEIVE_SIZE)
                if not data:
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        # The peer is gone: nothing more can be written.
        self._cancel_scope.cancel()

    async def _handle(self, connection: TerminalConnection, event: _rfc6455.ClientEvent) -> bool:
        """Act on one client event; True when the connection is over."""
        if isinstance(event, _rfc6455.CloseReceived):
            if self._close_requested.is_set():
                self._peer_closed.set()  # the answer to ours: the closer ends the connection
                return True
            # The peer started it: echo its code (RFC 6455 §5.5.1), then close TCP.
            self._close_requested.set()
            self._close_sent = True
            await self._send(_rfc6455.close_frame(event.code))
            self._cancel_scope.cancel()
            return True
        if self._close_requested.is_set():
            return False  # closing: only the peer's close frame matters now
        if isinstance(event, _rfc6455.DataMessage):
            await connection.handle_message(event.payload)
        elif isinstance(event, _rfc6455.Ping):
            await self._send_data(_rfc6455.pong_frame(event.payload))
        elif isinstance(event, _rfc6455.Violation):
            self.begin_close(event.code, event.reason)
        return False

    async def _closer(self) -> None:
        await self._close_requested.wait()
        if self._close_sent:
            return  # the reader answered the peer's close itself
        with trio.move_on_after(self._close_timeout):
            frame = _rfc6455.close_frame(self._close_code, self._close_reason)
            self._close_sent = True
            await self._send(frame)
            await self._peer_closed.wait()
        self._cancel_scope.cancel()


def _output_frames(payload: bytes) -> bytes:
    """Output as binary frames of at most ``MAX_OUTPUT_FRAME`` bytes, concatenated."""
    if len(payload) <= MAX_OUTPUT_FRAME:
        return _rfc6455.encode_frame(_rfc6455.OP_BINARY, payload)
    view = memoryview(payload)
    return b"".join(
        _rfc6455.encode_frame(_rfc6455.OP_BINARY, bytes(view[i : i + MAX_OUTPUT_FRAME]))
        for i in range(0, len(payload), MAX_OUTPUT_FRAME)
    )
