"""One subscriber's bounded queue of events (SPEC A.3): a ``trio.open_memory_channel``.

The hub holds the send side and calls ``send_nowait`` on it; the connection's writer task owns
the receive side and drains it. A full channel (``trio.WouldBlock``) is the slow-consumer
signal. Nothing here awaits a socket and nothing here is locked: every call runs in the Trio
thread, between checkpoints.

``message.streaming`` events are the one thing a plain channel cannot do: a queued one must be
replaced by the newer one for the same channel (each carries the whole partial text). Such an
event travels in a small mutable ``_StreamSlot``; while the slot is still in the channel the hub
swaps the event inside it instead of sending again, so a busy stream holds one place at most.
A swapped-in event can carry a higher ``seq`` than entries queued after its slot; since the
writer always drains the whole channel at once, sorting each batch by ``seq`` restores the order
the client must see.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

import trio

from loop_server.events._envelope import MESSAGE_STREAMING
from loop_server.events._event import Event
from loop_server.websocket_close import NORMAL as CLOSE_NORMAL

_by_seq = attrgetter("seq")


class _StreamSlot:
    """A queued ``message.streaming`` event that a newer one may still replace."""

    __slots__ = ("event",)

    def __init__(self, event: Event) -> None:
        self.event = event


_Entry = Event | _StreamSlot


class Subscription:
    """What ``EventsHub.register`` returns: the channel filter, the hub's send side of the
    connection's memory channel, and the receive side that the connection's writer drains."""

    __slots__ = (
        "_backlog",
        "_channels",
        "_close_code",
        "_close_reason",
        "_closed_event",
        "_on_close",
        "_queue_size",
        "_receive",
        "_send",
        "_streaming",
        "coalesced",
        "replay_truncated",
        "start_seq",
    )

    def __init__(
        self,
        channels: frozenset[str] | None,
        queue_size: int,
        on_close: Callable[[Subscription], None],
        *,
        backlog: list[Event],
        start_seq: int,
        replay_truncated: bool,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._channels = channels
        self._queue_size = queue_size
        self._on_close = on_close
        self._send, self._receive = trio.open_memory_channel[_Entry](queue_size)
        # A replay may be longer than the queue: it is handed over with the first batch and
        # does not count against the bound.
        self._backlog = backlog
        # Streaming slots still in the channel, by channel id.
        self._streaming: dict[str, _StreamSlot] = {}
        self._close_code: int | None = None
        self._close_reason = ""
        self._closed_event = trio.Event()
        #: Streaming events replaced in this queue by a newer one for the same channel.
        self.coalesced = 0
        #: The hub's ``seq`` when this subscription started: live events follow it.
        self.start_seq = start_seq
        #: The replay asked for could not be given; the client should reload over REST.
        self.replay_truncated = replay_truncated

    # -- filter -------------------------------------------------------------------------

    @property
    def channels(self) -> frozenset[str] | None:
        """The channel ids this subscription receives; ``None`` means every channel."""
        return self._channels

    def matches(self, channel_id: str) -> bool:
        return self._channels is None or channel_id in self._channels

    # -- state --------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Events waiting to be written."""
        if self._close_code is not None:
            return 0
        return self._send.statistics().current_buffer_used + len(self._backlog)

    @property
    def closed(self) -> bool:
        return self._close_code is not None

    @property
    def close_code(self) -> int | None:
        """Why the subscription ended, as a WebSocket close code (4008 for a slow consumer,
        1001 for shutdown); ``None`` while it is open."""
        return self._close_code

    @property
    def close_reason(self) -> str:
        return self._close_reason

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> int:
        """Stop the subscription: the hub forgets it, queued events are dropped and the
        consumer's ``receive_batch`` raises ``trio.EndOfChannel``. The first call decides the
        code; later calls do nothing. Returns the number of queued events dropped."""
        if self._close_code is not None:
            return 0
        dropped = self.queued
        self._close_code = code
        self._close_reason = reason
        # Closing the send side wakes a waiting writer with EndOfChannel; closing the receive
        # side then frees what was queued (the writer must not send it after a close frame).
        self._send.close()
        self._receive.close()
        self._backlog = []
        self._streaming.clear()
        self._on_close(self)
        self._closed_event.set()
        return dropped

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    # -- producer side (the hub) ----------------------------------------------------------

    def _offer(self, event: Event) -> bool:
        """Queue ``event``; False when the channel is full (the caller closes us as slow)."""
        if self._close_code is not None:
            return True
        if event.type == MESSAGE_STREAMING:
            slot = self._streaming.get(event.channel_id)
            if slot is not None:
                # The queued text is obsolete: the newer event carries all of it.
                slot.event = event
                self.coalesced += 1
                return True
            slot = _StreamSlot(event)
            try:
                self._send.send_nowait(slot)
            except trio.WouldBlock:
                return False
            self._streaming[event.channel_id] = slot
            return True
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            return False
        return True

    # -- consumer side (the connection's writer) -------------------------------------------

    def receive_batch_nowait(self) -> list[Event]:
        """Every queued event, in ``seq`` order, emptying the queue. Raises
        ``trio.WouldBlock`` when there is nothing to take and ``trio.EndOfChannel`` once
        closed."""
        if self._close_code is not None:
            raise trio.EndOfChannel
        if self._backlog:
            batch, self._backlog = self._backlog, []
            return self._drain(batch)
        first = self._receive.receive_nowait()
        return self._drain([self._take(first)])

    async def receive_batch(self) -> list[Event]:
        """Like ``receive_batch_nowait`` but waits while nothing is queued."""
        if self._close_code is not None:
            await trio.lowlevel.checkpoint()
            raise trio.EndOfChannel
        if self._backlog:
            await trio.lowlevel.checkpoint()
            return self.receive_batch_nowait()
        try:
            first = await self._receive.receive()
        except trio.ClosedResourceError:
            # Closed by the hub while this task was being rescheduled.
            raise trio.EndOfChannel from None
        if self._close_code is not None:
            # Handed over just before the close: nothing is written after it.
            raise trio.EndOfChannel
        return self._drain([self._take(first)])

    def _take(self, entry: _Entry) -> Event:
        if isinstance(entry, Event):
            return entry
        event = entry.event
        # Out of the channel: the next streaming event of that channel needs a slot again.
        if self._streaming.get(event.channel_id) is entry:
            del self._streaming[event.channel_id]
        return event

    def _drain(self, batch: list[Event]) -> list[Event]:
        receive = self._receive
        take = self._take
        try:
            while True:
                batch.append(take(receive.receive_nowait()))
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            pass
        batch.sort(key=_by_seq)  # nearly always sorted already: linear
        return batch

    def __repr__(self) -> str:
        channels = "all" if self._channels is None else sorted(self._channels)
        return f"<Subscription channels={channels} queued={self.queued} close={self._close_code}>"
