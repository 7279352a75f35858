"""One ``/api/ws`` connection after its handshake: the Trio layer that moves bytes.

Three tasks in the connection's own nursery (DESIGN §2):

* the writer takes *every* frame queued for the connection and writes them with one
  ``send_all``: one wake-up and one system call per batch, not per event;
* the reader parses client frames (subscribe messages, ping, close, limits);
* the watchdog bounds the close handshake once either side starts it, so a peer that stopped
  reading cannot hold the connection (or its last batch) forever.

All three end as soon as one of them decides the connection is over; ``finally`` unregisters
the subscription and closes the socket.
"""

from __future__ import annotations

import math
import os

import trio

from loop_server.events import Event, EventsHub, Subscription
from loop_server.serving import _rfc6455
from loop_server.serving._events_protocol import parse_subscribe

_RECEIVE_SIZE = 65536


class EventsConnection:
    def __init__(
        self,
        stream: trio.abc.Stream,
        hub: EventsHub,
        subscription: Subscription,
        *,
        max_message_size: int,
        close_timeout: float,
    ) -> None:
        self._stream = stream
        self._hub = hub
        self._subscription = subscription
        self._parser = _rfc6455.FrameParser(max_message_size)
        self._close_timeout = close_timeout
        # Control frames (pongs) the reader wants written; the writer owns the socket.
        self._control: list[bytes] = []
        self._close_received = trio.Event()
        self._cancel_scope = trio.CancelScope()
        # What a direct write (below) could not write: the writer sends it before anything else.
        self._remainder: bytes = b""
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1

    async def run(self, opening: bytes, leftover: bytes) -> None:
        """Serve the connection. ``opening`` (the 101 answer and any hello/truncated frame)
        is written first; ``leftover`` is what the client sent after its request head."""
        if self._fd >= 0:
            self._subscription.set_direct_writer(self._write_now)
        try:
            with self._cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, opening)
                    nursery.start_soon(self._reader, leftover)
                    nursery.start_soon(self._watchdog)
        finally:
            # Unregister first: once the socket is closed its descriptor number may be reused,
            # and no direct write may happen after that.
            self._subscription.set_direct_writer(None)
            self._hub.unregister(self._subscription)
            await trio.aclose_forcefully(self._stream)

    def _finish(self) -> None:
        self._cancel_scope.cancel()

    def _write_now(self, events: list[Event]) -> None:
        """Write ``events`` from the hub, outside any task, while the writer is parked: one
        non-blocking system call, no task switch. What the socket does not take (a full
        buffer, an error) goes to the writer task, which finds out the rest with send_all."""
        data = b"".join(_frames(events))
        try:
            sent = os.write(self._fd, data)
        except OSError:
            sent = 0
        if sent < len(data):
            self._remainder = data[sent:]
            self._subscription.wake()

    async def _writer(self, opening: bytes) -> None:
        stream = self._stream
        subscription = self._subscription
        control = self._control
        pending: list[bytes] = [opening]
        try:
            try:
                # Replayed events are already queued: they go out with the handshake.
                events = subscription.receive_batch_nowait()
            except trio.WouldBlock:
                events = []
            while True:
                if self._remainder:
                    pending.append(self._remainder)
                    self._remainder = b""
                if control:
                    pending.extend(control)
                    control.clear()
                if events:
                    pending.extend(_frames(events))
                if pending:
                    data = pending[0] if len(pending) == 1 else b"".join(pending)
                    pending = []
                    await stream.send_all(data)
                events = await subscription.receive_batch()
        except trio.EndOfChannel:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._finish()
            return
        # Closed by the hub (slow consumer, shutdown) or by the reader (peer's close,
        # protocol violation): answer or start the closing handshake.
        code = subscription.close_code
        assert code is not None
        if self._remainder:
            pending.append(self._remainder)
            self._remainder = b""
        pending.extend(control)
        pending.append(_rfc6455.close_frame(code, subscription.close_reason))
        try:
            await stream.send_all(b"".join(pending))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._finish()
            return
        # The server closes TCP first, once the peer has answered (bounded by the watchdog).
        await self._close_received.wait()
        self._finish()

    async def _reader(self, leftover: bytes) -> None:
        subscription = self._subscription
        data: bytes | bytearray = leftover
        try:
            while True:
                if data:
                    for event in self._parser.feed(data):
                        if self._handle(event):
                            return
                data = await self._stream.receive_some(_RECEIVE_SIZE)
                if not data:
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        # The peer is gone without a close handshake: nothing more can be written.
        if not subscription.closed:
            self._finish()
        else:
            self._close_received.set()

    def _handle(self, event: _rfc6455.ClientEvent) -> bool:
        """Act on one client event; True when the reader is done."""
        subscription = self._subscription
        if isinstance(event, _rfc6455.CloseReceived):
            self._close_received.set()
            # Echo the peer's code (RFC 6455 §5.5.1); a no-op if we were already closing.
            subscription.close(event.code, "")
            return True
        if subscription.closed:
            # Closing: only the peer's close frame matters now.
            return False
        if isinstance(event, _rfc6455.DataMessage):
            is_subscribe, channels = parse_subscribe(event.payload)
            if is_subscribe:
                self._hub.set_channels(subscription, channels)
        elif isinstance(event, _rfc6455.Ping):
            self._control.append(_rfc6455.pong_frame(event.payload))
            subscription.wake()
        elif isinstance(event, _rfc6455.Violation):
            subscription.close(event.code, event.reason)
        return False

    async def _watchdog(self) -> None:
        await self._subscription.wait_closed()
        if math.isfinite(self._close_timeout):
            await trio.sleep(self._close_timeout)
            self._finish()


def _frames(events: list[Event]) -> list[bytes]:
    frames = []
    for event in events:
        frame = event.frame
        if frame is None:
            # The first connection to send an event frames it for all the others.
            frame = event.frame = _rfc6455.text_frame(event.payload)
        frames.append(frame)
    return frames
