"""One subscriber's bounded queue of events (SPEC A.3).

Not a ``trio.MemoryChannel``: a still-queued ``message.streaming`` for a channel must be replaced
by the newer one, which a channel cannot do. This is a plain list plus one parked task; everything
that touches it runs synchronously in the Trio thread, so it needs no lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import trio

from loop_server.events._envelope import MESSAGE_STREAMING
from loop_server.events._event import Event

# WebSocket close code the hub uses; kept here because the hub is the one that decides them.
CLOSE_NORMAL = 1000


class Subscription:
    """What ``EventsHub.register`` returns: the channel filter and the queue of events that one
    connection has not written yet. The connection's writer task is the only consumer."""

    __slots__ = (
        "_channels",
        "_close_code",
        "_close_reason",
        "_closed_event",
        "_direct_writer",
        "_holes",
        "_kicked",
        "_limit",
        "_live",
        "_on_close",
        "_on_pending",
        "_pending",
        "_queue",
        "_queue_size",
        "_streaming",
        "_waiter",
        "coalesced",
        "replay_truncated",
        "start_seq",
    )

    def __init__(
        self,
        channels: frozenset[str] | None,
        queue_size: int,
        on_close: Callable[[Subscription], None],
        on_pending: Callable[[Subscription], None] | None = None,
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
        # Direct writing (see set_direct_writer): the hub collects subscriptions whose idle
        # writer has events pending, and flushes them all once the publishing burst is over.
        self._on_pending = on_pending
        self._direct_writer: Callable[[list[Event]], None] | None = None
        self._pending = False
        # Entries are None where a streaming event was superseded (see _offer).
        self._queue: list[Event | None] = list(backlog)
        self._live = len(backlog)
        self._holes = 0
        # A replay backlog may be longer than the queue: it does not count against the bound
        # until the writer has taken it.
        self._limit = queue_size + len(backlog)
        self._streaming: dict[str, int] = {}
        for index, event in enumerate(backlog):
            if event.type == MESSAGE_STREAMING:
                self._streaming[event.channel_id] = index
        self._waiter: trio.lowlevel.Task | None = None
        self._kicked = False
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
        return self._live

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
        dropped = self._live
        self._close_code = code
        self._close_reason = reason
        self._reset_queue()
        self._on_close(self)
        self._closed_event.set()
        self._wake()
        return dropped

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    # -- producer side (the hub) ----------------------------------------------------------

    def _offer(self, event: Event) -> bool:
        """Queue ``event``; False when the queue is full (the caller closes us as slow)."""
        if self._close_code is not None:
            return True
        queue = self._queue
        if event.type == MESSAGE_STREAMING:
            index = self._streaming.get(event.channel_id)
            if index is not None:
                # Each streaming event carries the whole partial text: the queued one is
                # obsolete. Replacing it keeps a busy stream from filling the queue by itself.
                self.coalesced += 1
                if index == len(queue) - 1:
                    queue[index] = event
                    return True
                # Not the newest entry: leave a hole and append, so the order of `seq` as the
                # client sees it stays increasing.
                queue[index] = None
                self._holes += 1
                self._streaming[event.channel_id] = len(queue)
                queue.append(event)
                if self._holes > self._queue_size:
                    self._compact()
                return True
            if self._live >= self._limit:
                return False
            self._streaming[event.channel_id] = len(queue)
        elif self._live >= self._limit:
            return False
        queue.append(event)
        self._live += 1
        if self._waiter is not None and not self._pending:
            if self._direct_writer is not None and self._on_pending is not None:
                # The writer is idle: rather than waking it (a task switch per connection
                # per event), let the hub write the whole burst for it afterwards.
                self._pending = True
                self._on_pending(self)
            else:
                self._wake()
        return True

    def set_direct_writer(self, writer: Callable[[list[Event]], None] | None) -> None:
        """Let the hub write queued events itself while the consumer is parked in
        ``receive_batch``: ``writer`` gets the batch and must write it without blocking, and
        hand whatever it could not write to its own task (``wake()`` it). Saves one task
        switch per connection per burst; None turns it off."""
        self._direct_writer = writer

    def _flush(self) -> None:
        """Called by the hub after a publishing burst."""
        self._pending = False
        if self._close_code is not None or not self._live or self._waiter is None:
            # Closed, or the consumer is awake and will take the queue itself.
            return
        writer = self._direct_writer
        if writer is None:
            self._wake()
            return
        writer(self.receive_batch_nowait())

    def _compact(self) -> None:
        queue = [event for event in self._queue if event is not None]
        self._streaming = {
            event.channel_id: index
            for index, event in enumerate(queue)
            if event.type == MESSAGE_STREAMING
        }
        self._queue = cast(list[Event | None], queue)
        self._holes = 0

    # -- consumer side (the connection's writer) -------------------------------------------

    def wake(self) -> None:
        """Make a waiting ``receive_batch`` return (with an empty batch if nothing is queued),
        so the writer can attend to something else, such as a pong to send."""
        self._kicked = True
        self._wake()

    def receive_batch_nowait(self) -> list[Event]:
        """Every queued event, oldest first, emptying the queue. Raises ``trio.WouldBlock``
        when there is nothing to take and ``trio.EndOfChannel`` once closed."""
        if self._close_code is not None:
            raise trio.EndOfChannel
        if not self._live:
            if self._kicked:
                self._kicked = False
                return []
            raise trio.WouldBlock
        batch = self._queue
        if self._holes:
            batch = [event for event in batch if event is not None]
        self._reset_queue()
        return cast(list[Event], batch)

    async def receive_batch(self) -> list[Event]:
        """Like ``receive_batch_nowait`` but waits while nothing is queued."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            return self.receive_batch_nowait()
        except trio.WouldBlock:
            pass
        if self._waiter is not None:
            raise trio.BusyResourceError("another task is already receiving")
        self._waiter = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        return self.receive_batch_nowait()

    def _reset_queue(self) -> None:
        self._queue = []
        self._live = 0
        self._holes = 0
        self._kicked = False
        self._limit = self._queue_size
        if self._streaming:
            self._streaming = {}

    def _wake(self) -> None:
        task = self._waiter
        if task is not None:
            self._waiter = None
            trio.lowlevel.reschedule(task)

    def __repr__(self) -> str:
        channels = "all" if self._channels is None else sorted(self._channels)
        return f"<Subscription channels={channels} queued={self._live} close={self._close_code}>"
