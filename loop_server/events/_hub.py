"""The events hub (SPEC §4.3, A.3, A.4): synchronous, lock-free fan-out.

Each subscription is a bounded ``trio`` memory channel; ``broadcast`` encodes an event once and
``send_nowait``s the shared object into every matching channel. The hub never touches a socket:
each connection's own writer task drains its channel (docs/events.md). Everything here runs in
the Trio thread and never awaits, so "register and take the replay snapshot atomically" and
"broadcast to a consistent set of subscribers" hold without locks: nothing else can run in
between.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import trio

from loop_server import websocket_close
from loop_server.domain import Message
from loop_server.events._envelope import (
    AGENT_ACTIVITY,
    AGENT_STATUS,
    MESSAGE_CREATED,
    MESSAGE_STREAMING,
    TOOL_USE,
    agent_activity_data,
    agent_status_data,
    encode_data,
    encode_envelope,
    envelope_from_parts,
    message_created_data,
    message_streaming_data,
    tool_use_data,
)
from loop_server.events._event import Event, OutboundEvent
from loop_server.events._global import (
    CHANNEL_CREATED,
    CHANNEL_DELETED,
    CONTAINER_STATUS_CHANGED,
    TASK_RUN_COMPLETED,
    container_data,
    task_data,
    task_run_data,
)
from loop_server.events._pacer import WritePacer
from loop_server.events._subscription import Subscription

logger = logging.getLogger("loop_server.events")

CLOSE_GOING_AWAY = websocket_close.GOING_AWAY
CLOSE_SLOW_CONSUMER = websocket_close.SLOW_CONSUMER
SLOW_CONSUMER_REASON = websocket_close.SLOW_CONSUMER_REASON
SHUTDOWN_REASON = websocket_close.SHUTDOWN_REASON
EPOCH_CHANGED_REASON = websocket_close.EPOCH_CHANGED_REASON
REPLAY_GAP_REASON = websocket_close.REPLAY_GAP_REASON

DEFAULT_QUEUE_SIZE = 256
DEFAULT_HISTORY_SIZE = 1000
HURRY_AFTER_EVENTS = 32


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class HubStatistics:
    """A snapshot for ``/api/health`` and benchmarks."""

    subscribers: int
    max_queue_depth: int
    total_queue_depth: int
    slow_consumers_closed: int
    #: Events that were queued for slow consumers when they were closed.
    events_dropped: int
    #: Queued ``message.streaming`` events replaced by a newer one.
    events_coalesced: int
    events_published: int
    retained: int
    seq: int
    epoch: str


class EventsHub:
    """Fans events out to subscriptions; satisfies ``protocols.EventBroadcaster``.

    Call it from the Trio thread only (from a worker thread: ``trio.from_thread.run_sync``).
    Every method but ``wait_subscriber_count`` is synchronous and never blocks.
    """

    def __init__(
        self,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        history_size: int = DEFAULT_HISTORY_SIZE,
        clock_ms: Callable[[], int] = _wall_clock_ms,
        epoch: str | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if history_size < 0:
            raise ValueError("history_size must not be negative")
        self._queue_size = queue_size
        # Events published since the writers' last wave, at which the next one is hurried:
        # half the smallest queue, so pacing alone never overflows one (4008), and at most
        # HURRY_AFTER_EVENTS: more per wave saves little, and a publisher that waits for its
        # events to arrive (a window) must not wait for the gap.
        self._hurry_after = max(1, min(HURRY_AFTER_EVENTS, queue_size // 2))
        #: When the connections' writers flush (``_pacer.py``).
        self.pacer = WritePacer(self._current_seq)
        self._clock_ms = clock_ms
        self._epoch = epoch if epoch is not None else secrets.token_hex(8)
        self._seq = 0
        self._history: deque[Event] = deque(maxlen=history_size)
        # Insertion-ordered dicts used as sets: subscribers with no filter, and per channel.
        self._all: dict[Subscription, None] = {}
        self._by_channel: dict[str, dict[Subscription, None]] = {}
        self._registered: dict[Subscription, None] = {}
        self._changed = trio.lowlevel.ParkingLot()
        self._shutdown: tuple[int, str] | None = None
        self._published = 0
        self._slow_closed = 0
        self._dropped = 0
        self._coalesced_by_closed = 0
        # Relay mode: where broadcasts go instead of being delivered here (None: this process
        # only, the default).
        self._outbound: Callable[[OutboundEvent], None] | None = None
        # Relay mode: subscriptions resuming after a seq this hub has not reached yet, by it.
        self._waiting: dict[Subscription, int] = {}

    @property
    def epoch(self) -> str:
        """Identifies this run of the server: ``seq`` values only compare within one epoch."""
        return self._epoch

    def _current_seq(self) -> int:
        return self._seq

    @property
    def history_size(self) -> int:
        """How many events are retained for replay."""
        return self._history.maxlen or 0

    @property
    def seq(self) -> int:
        """The ``seq`` of the last event published (0 before the first)."""
        return self._seq

    # -- subscriptions ---------------------------------------------------------------------

    def register(
        self,
        channels: Iterable[str] | None = None,
        *,
        since: int | None = None,
        epoch: str | None = None,
        queue_size: int | None = None,
    ) -> Subscription:
        """Subscribe to ``channels`` (``None`` or empty: every channel).

        With ``since``, the retained events after it that match the filter are queued first;
        later events follow with no gap and no duplicate, because taking the snapshot and
        joining the fan-out happen here without a checkpoint in between. When that replay is
        impossible (``since`` older than what is retained, from another epoch, or ahead of
        this run) the subscription has ``replay_truncated`` set and starts live.

        In relay mode a ``since`` of this epoch a little ahead of this hub (another instance
        delivered it first; this one's reader is a moment behind) is not truncated: the
        subscription joins the fan-out once this hub reaches ``since``.
        """
        channel_set = _channel_filter(channels)
        backlog: list[Event] = []
        truncated = False
        ahead = (
            self._outbound is not None
            and since is not None
            and epoch == self._epoch
            and self._seq < since <= self._seq + self.history_size
        )
        if since is not None and not ahead:
            backlog, truncated = self._replay(since, epoch, channel_set)
        if queue_size is not None:
            self._hurry_after = min(self._hurry_after, max(1, queue_size // 2))
        subscription = Subscription(
            channel_set,
            queue_size if queue_size is not None else self._queue_size,
            self._forget,
            backlog=backlog,
            start_seq=since if ahead and since is not None else self._seq,
            replay_truncated=truncated,
        )
        self._registered[subscription] = None
        if ahead and since is not None:
            self._waiting[subscription] = since
        else:
            self._index(subscription)
        self._changed.unpark_all()
        if self._shutdown is not None:
            # Registered during shutdown: it ends at once, the way every other one did.
            subscription.close(*self._shutdown)
        return subscription

    def unregister(self, subscription: Subscription) -> None:
        """Forget ``subscription`` and close it if still open. Calling it again is harmless."""
        subscription.close()

    def set_channels(self, subscription: Subscription, channels: Iterable[str] | None) -> None:
        """Replace the filter (the client's ``subscribe`` message): exactly ``channels``;
        ``None`` or empty means every channel."""
        if subscription not in self._registered:
            return
        if subscription in self._waiting:
            subscription._channels = _channel_filter(channels)
            return
        self._unindex(subscription)
        subscription._channels = _channel_filter(channels)
        self._index(subscription)

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = SHUTDOWN_REASON) -> int:
        """Close every subscription (graceful shutdown) and any registered later. Returns how
        many were open."""
        self._shutdown = (code, reason)
        subscriptions = list(self._registered)
        for subscription in subscriptions:
            subscription.close(code, reason)
        return len(subscriptions)

    async def wait_subscriber_count(self, count: int) -> None:
        """Wait until exactly ``count`` subscriptions are registered."""
        while len(self._registered) != count:
            await self._changed.park()
        await trio.lowlevel.checkpoint()

    def _forget(self, subscription: Subscription) -> None:
        # Called by Subscription.close(): whoever closes it, the hub stops delivering to it.
        if subscription in self._registered:
            del self._registered[subscription]
            self._waiting.pop(subscription, None)
            self._unindex(subscription)
            self._coalesced_by_closed += subscription.coalesced
            self._changed.unpark_all()

    def _index(self, subscription: Subscription) -> None:
        channels = subscription.channels
        if channels is None:
            self._all[subscription] = None
            return
        for channel_id in channels:
            self._by_channel.setdefault(channel_id, {})[subscription] = None

    def _unindex(self, subscription: Subscription) -> None:
        channels = subscription.channels
        if channels is None:
            self._all.pop(subscription, None)
            return
        for channel_id in channels:
            members = self._by_channel.get(channel_id)
            if members is not None:
                members.pop(subscription, None)
                if not members:
                    del self._by_channel[channel_id]

    def _replay(
        self, since: int, epoch: str | None, channels: frozenset[str] | None
    ) -> tuple[list[Event], bool]:
        if (epoch is not None and epoch != self._epoch) or since < 0 or since > self._seq:
            return [], True
        if since == self._seq:
            return [], False
        first = self._history[0].seq if self._history else self._seq + 1
        if since < first - 1:
            return [], True
        # seq values in the history are consecutive, so the position is arithmetic.
        newer = itertools.islice(self._history, since - first + 1, None)
        matching = [e for e in newer if channels is None or e.is_global or e.channel_id in channels]
        # A replay needs only the newest partial text of each stream, as a live queue would.
        kept: list[Event] = []
        streams_seen: set[str] = set()
        for event in reversed(matching):
            if event.type == MESSAGE_STREAMING:
                if event.channel_id in streams_seen:
                    continue
                streams_seen.add(event.channel_id)
            kept.append(event)
        kept.reverse()
        return kept, False

    # -- publishing ------------------------------------------------------------------------

    def broadcast(
        self,
        event_type: str,
        channel_id: str,
        data: Mapping[str, object] | None,
        *,
        is_global: bool = False,
    ) -> Event | None:
        """Publish an event to every matching subscription (``is_global``: to every
        subscription, whatever its filter). Never blocks and never awaits: a subscription whose
        queue is full is closed as a slow consumer instead. Returns the event, or None when
        ``data`` cannot be encoded (logged and dropped, as upstream).

        In relay mode (``relay_through``) the event is handed to the relay instead and comes
        back through ``deliver_shared`` with its shared ``seq``; None is returned then."""
        if self._outbound is not None:
            self._hand_to_relay(self._outbound, event_type, channel_id, data, is_global)
            return None
        seq = self._seq + 1
        try:
            payload = encode_envelope(event_type, channel_id, data, self._clock_ms(), seq)
        except (TypeError, ValueError):
            logger.exception("events hub: marshal failed", extra={"event_type": event_type})
            return None
        event = Event(seq, event_type, channel_id, payload, is_global=is_global)
        self._publish(event)
        return event

    def _publish(self, event: Event) -> None:
        # The one delivery path, for local and shared events alike: retain, then fan out.
        self._seq = event.seq
        self._published += 1
        self._history.append(event)
        overflowed: list[Subscription] = []
        if self._waiting:
            self._join_waiting(event.seq)
        if event.is_global:
            receivers: Iterable[Subscription] = self._registered
            if self._waiting:
                receivers = [s for s in self._registered if s not in self._waiting]
        else:
            targeted = self._by_channel.get(event.channel_id)
            receivers = self._all if targeted is None else itertools.chain(self._all, targeted)
        for subscription in receivers:
            if not subscription._offer(event):
                overflowed.append(subscription)
        if event.seq - self.pacer.wave_seq >= self._hurry_after:
            self.pacer.hurry()
        # Closed after the loops: closing changes the dicts being iterated.
        for subscription in overflowed:
            self._slow_closed += 1
            self._dropped += subscription.close(CLOSE_SLOW_CONSUMER, SLOW_CONSUMER_REASON)
            logger.warning(
                "events hub: slow consumer closed",
                extra={"queue_size": subscription._queue_size},
            )

    def _join_waiting(self, seq: int) -> None:
        # Before the fan-out of ``seq``: a subscription waiting for ``since`` gets what follows.
        for subscription, since in list(self._waiting.items()):
            if since < seq:
                del self._waiting[subscription]
                self._index(subscription)

    # -- relay mode (several instances; events/_redis_relay.py) -----------------------------

    def relay_through(self, outbound: Callable[[OutboundEvent], None], epoch: str) -> None:
        """Hand every later ``broadcast`` to ``outbound`` instead of delivering it, and use the
        shared ``epoch``. Events then arrive, from every instance, through ``deliver_shared``."""
        self._outbound = outbound
        self._epoch = epoch

    def _hand_to_relay(
        self,
        outbound: Callable[[OutboundEvent], None],
        event_type: str,
        channel_id: str,
        data: Mapping[str, object] | None,
        is_global: bool,
    ) -> None:
        try:
            data_json = encode_data(data)
        except (TypeError, ValueError):
            logger.exception("events hub: marshal failed", extra={"event_type": event_type})
            return
        outbound(
            OutboundEvent(event_type, channel_id, data_json, self._clock_ms(), is_global=is_global)
        )

    def deliver_shared(
        self,
        seq: int,
        event_type: str,
        channel_id: str,
        data_json: bytes,
        timestamp_ms: int,
        *,
        is_global: bool = False,
    ) -> Event | None:
        """Deliver an event the shared stream numbered ``seq``, exactly as ``broadcast`` would.

        Returns None for a ``seq`` already delivered (exactly once). A ``seq`` that skips some
        (the stream was trimmed past what this hub read, or an entry was unreadable) empties the
        history first: a replay must never claim continuity across events it does not have, so
        a ``since`` inside the gap gets ``replay_truncated``."""
        if seq <= self._seq:
            return None
        if seq != self._seq + 1:
            self._history.clear()
            # A waiting subscription's events may be in the gap: it reconnects and is told.
            for subscription in [s for s, since in self._waiting.items() if since < seq - 1]:
                subscription.close(CLOSE_GOING_AWAY, REPLAY_GAP_REASON)
        event = Event(
            seq,
            event_type,
            channel_id,
            envelope_from_parts(event_type, channel_id, data_json, timestamp_ms, seq),
            is_global=is_global,
        )
        self._publish(event)
        return event

    def begin_epoch(self, epoch: str) -> int:
        """The shared stream started over (Redis lost its data): adopt ``epoch``, forget the
        history and ``seq``, and close every subscription with 1001 so its client reconnects
        and learns (``replay_truncated``) that it must reload. Returns how many were closed."""
        self._epoch = epoch
        self._seq = 0
        self.pacer.wave_seq = -1
        self._history.clear()
        subscriptions = list(self._registered)
        for subscription in subscriptions:
            subscription.close(CLOSE_GOING_AWAY, EPOCH_CHANGED_REASON)
        return len(subscriptions)

    def broadcast_message_created(self, message: Message) -> None:
        self.broadcast(MESSAGE_CREATED, message.channel_id, message_created_data(message))

    def broadcast_message_streaming(self, channel_id: str, content: str) -> None:
        self.broadcast(MESSAGE_STREAMING, channel_id, message_streaming_data(content))

    def broadcast_agent_status(self, channel_id: str, status: str, error: str = "") -> None:
        self.broadcast(AGENT_STATUS, channel_id, agent_status_data(status, error))

    def broadcast_tool_use(
        self, channel_id: str, tool_name: str, tool_input: str, tool_use_id: str = ""
    ) -> None:
        self.broadcast(TOOL_USE, channel_id, tool_use_data(tool_name, tool_input, tool_use_id))

    def broadcast_agent_activity(
        self, channel_id: str, activity: str, model: str = "", description: str = ""
    ) -> None:
        self.broadcast(
            AGENT_ACTIVITY, channel_id, agent_activity_data(activity, model, description)
        )

    # Global events (``_global.py``): every subscription gets them, whatever its filter.

    def broadcast_channel_created(self, parent_id: str, channel_id: str) -> None:
        self.broadcast(CHANNEL_CREATED, parent_id, {"channel_id": channel_id}, is_global=True)

    def broadcast_channel_deleted(self, channel_id: str) -> None:
        self.broadcast(CHANNEL_DELETED, channel_id, None, is_global=True)

    def broadcast_task_event(self, event_type: str, task_id: int, channel_id: str) -> None:
        """``task.created``, ``task.updated`` or ``task.deleted``."""
        self.broadcast(event_type, channel_id, task_data(task_id, channel_id), is_global=True)

    def broadcast_task_run_completed(
        self, task_id: int, run_id: int, status: str, channel_id: str
    ) -> None:
        data = task_run_data(task_id, run_id, status, channel_id)
        self.broadcast(TASK_RUN_COMPLETED, channel_id, data, is_global=True)

    def broadcast_container_status_changed(
        self, container_id: str, channel_id: str, kind: str, status: str, name: str
    ) -> None:
        data = container_data(container_id, channel_id, kind, status, name)
        self.broadcast(CONTAINER_STATUS_CHANGED, "", data, is_global=True)

    # -- introspection ---------------------------------------------------------------------

    def statistics(self) -> HubStatistics:
        depths = [subscription.queued for subscription in self._registered]
        coalesced = self._coalesced_by_closed + sum(s.coalesced for s in self._registered)
        return HubStatistics(
            subscribers=len(self._registered),
            max_queue_depth=max(depths, default=0),
            total_queue_depth=sum(depths),
            slow_consumers_closed=self._slow_closed,
            events_dropped=self._dropped,
            events_coalesced=coalesced,
            events_published=self._published,
            retained=len(self._history),
            seq=self._seq,
            epoch=self._epoch,
        )


def _channel_filter(channels: Iterable[str] | None) -> frozenset[str] | None:
    if channels is None:
        return None
    channel_set = frozenset(channels)
    return channel_set or None
