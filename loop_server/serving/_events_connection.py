"""One ``/api/ws`` connection after its handshake: the shape of docs/events.md.

The connection's nursery owns three tasks:

* the writer drains the subscription's memory channel — everything queued, in one batch — and
  writes the batch's shared, pre-framed bytes with one ``send_all``, when the hub's pacer says
  so (at once when no HTTP request is being served; in waves while requests are:
  ``events/_pacer.py``).
  A failed write ends the writer, which cancels the nursery; ``finally`` unregisters;
* the reader runs the WebSocket core (client frames, subscribe messages, ping, close, limits)
  and ends the connection when the WebSocket is over;
* the watchdog gives the connection the close timeout once the hub closes the subscription
  (slow consumer, shutdown), for a writer stuck on a peer that stopped reading.
"""

from __future__ import annotations

import logging
from operator import attrgetter

import trio

from loop_server.events import Event, EventsHub, Subscription
from loop_server.serving import _rfc6455
from loop_server.serving._events_protocol import parse_subscribe
from loop_server.serving._websocket import WebSocket

logger = logging.getLogger("loop_server.events")

_by_seq = attrgetter("seq")


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
        self._close_timeout = close_timeout
        self._scope = trio.CancelScope()
        # The 101 answer goes out before anything the reader may write (a pong).
        self._opened = trio.Event()
        self._websocket = WebSocket(
            stream, self._scope, max_message_size=max_message_size, close_timeout=close_timeout
        )

    async def run(self, opening: bytes, leftover: bytes) -> None:
        """Serve the connection. ``opening`` (the 101 answer and any hello/truncated frame)
        is written first, with any replayed events; ``leftover`` is what the client sent
        after its request head."""
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, opening)
                    nursery.start_soon(self._watchdog)
                    await self._reader(leftover)
                    nursery.cancel_scope.cancel()
        finally:
            self._hub.unregister(self._subscription)
            await trio.aclose_forcefully(self._stream)

    async def _writer(self, opening: bytes) -> None:
        subscription = self._subscription
        websocket = self._websocket
        try:
            try:
                # Replayed events are already queued: they go out with the handshake.
                data = opening + b"".join(_frames(subscription.receive_batch_nowait()))
            except (trio.WouldBlock, trio.EndOfChannel):
                data = opening
            await websocket.send(data)
            self._opened.set()
            pacer = self._hub.pacer
            batch = await subscription.receive_batch()
            while True:
                if batch[-1].seq > pacer.wave_seq:
                    await pacer.wait_turn(batch[-1].seq)
                    batch = _with_queued(subscription, batch)
                await websocket.send(b"".join(_frames(batch)))
                if pacer.behind:
                    await pacer.next_wave()
                    try:
                        batch = subscription.receive_batch_nowait()
                        continue
                    except trio.WouldBlock:
                        pass
                batch = await subscription.receive_batch()
        except trio.EndOfChannel:
            # Closed by the hub (slow consumer, shutdown): start the closing handshake.
            code = subscription.close_code
            assert code is not None
            await websocket.close(code, subscription.close_reason)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as err:
            logger.info("events hub: write failed, unregistering client: %s", err)
            self._scope.cancel()

    async def _reader(self, leftover: bytes) -> None:
        subscription = self._subscription
        websocket = self._websocket
        await self._opened.wait()
        message = await websocket.receive_message(leftover)
        while message is not None:
            is_subscribe, channels = parse_subscribe(message)
            if is_subscribe:
                self._hub.set_channels(subscription, channels)
            message = await websocket.receive_message()

    async def _watchdog(self) -> None:
        await self._subscription.wait_closed()
        deadline = trio.current_time() + self._close_timeout
        self._scope.deadline = min(self._scope.deadline, deadline)


def _with_queued(subscription: Subscription, batch: list[Event]) -> list[Event]:
    """``batch`` and whatever was queued after it, in ``seq`` order. Raises
    ``trio.EndOfChannel`` when the subscription was closed meanwhile: nothing is written
    after a close."""
    try:
        more = subscription.receive_batch_nowait()
    except trio.WouldBlock:
        return batch
    batch += more
    batch.sort(key=_by_seq)
    return batch


def _frames(events: list[Event]) -> list[bytes]:
    frames = []
    for event in events:
        frame = event.frame
        if frame is None:
            # The first connection to send an event frames it for all the others.
            frame = event.frame = _rfc6455.text_frame(event.payload)
        frames.append(frame)
    return frames
