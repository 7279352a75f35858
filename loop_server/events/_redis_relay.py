"""Events across several instances: a Redis stream gives every event its ``seq`` and every
instance delivers the stream, in its order, once (docs/events.md, "Across instances (Redis)").

With a relay, ``EventsHub.broadcast`` delivers nothing itself: it hands the event's parts to
``RedisRelay.offer`` (synchronous, never blocks: a bounded memory channel). Two tasks do the I/O:

* the **publisher** takes what is queued as one batch and runs ``PUBLISH_SCRIPT`` once for it
  (one round trip for the whole batch; while it is in flight the next batch gathers);
* the **reader** ``XREAD BLOCK``s the stream after the last ID it delivered and hands each entry to
  ``hub.deliver_shared``, the publishing instance's own events included.

Redis going away does not stop the server: both tasks retry with backoff and log once per outage;
broadcasts queue meanwhile (up to ``outbound_size``, then they are dropped and counted). A batch
whose reply was lost is sent again under the same batch number, and the script publishes a batch
number once (exactly once as long as Redis kept its data; a Redis that lost it starts a new epoch
and every client reloads anyway).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import cast

import anyio
import coredis
import coredis.exceptions
import trio
from coredis.response.types import StreamEntry
from coredis.retry import NoRetryPolicy

from loop_server.events._event import OutboundEvent
from loop_server.events._hub import EventsHub
from loop_server.events._redis_stream import (
    BATCH_KEY_PREFIX,
    EPOCH_KEY,
    PUBLISH_SCRIPT,
    SEQ_KEY,
    STREAM_KEY,
    MalformedEntry,
    parse_entry,
)

logger = logging.getLogger("loop_server.events")

_STREAM_KEY_BYTES = STREAM_KEY.encode()

#: What a lost or refused connection looks like through coredis on anyio: retried, not fatal.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    coredis.exceptions.ConnectionError,
    TimeoutError,
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)

DEFAULT_OUTBOUND_SIZE = 10_000
DEFAULT_BATCH_SIZE = 256
DEFAULT_READ_COUNT = 512
DEFAULT_BLOCK_MS = 1_000
DEFAULT_FLUSH_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0
#: The stream keeps at least this many entries whatever the history size: a reader that falls
#: further behind than the stream is long finds a gap, and a few MB of Redis are cheaper.
MIN_STREAM_LENGTH = 10_000
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 2.0


class RelayUnavailable(Exception):
    """Redis could not be reached when the server started (the server does not start)."""


@dataclass(frozen=True, slots=True)
class RelayStatistics:
    published: int
    #: Broadcasts lost because the outbound queue was full or the relay had stopped.
    dropped: int
    #: Stream entries skipped because they were not in the stream's format.
    malformed: int
    epoch_changes: int
    outages: int
    queued: int


class _Outage:
    """Backoff for one loop, and one log line when an outage starts and one when it ends."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._since: float | None = None
        self._delay = _BACKOFF_FIRST
        self.count = 0

    async def wait(self, err: BaseException) -> None:
        if self._since is None:
            self._since = time.monotonic()
            self.count += 1
            logger.warning(
                "events relay: redis unreachable while %s, retrying: %r", self._what, err
            )
        await trio.sleep(self._delay)
        self._delay = min(self._delay * 2, _BACKOFF_MAX)

    def over(self) -> None:
        if self._since is not None:
            logger.warning(
                "events relay: redis reachable again for %s after %.1f s",
                self._what,
                time.monotonic() - self._since,
            )
            self._since = None
            self._delay = _BACKOFF_FIRST


class RedisRelay:
    """The hub's link to the shared stream. Build it with ``open_redis_relay``; run ``run(hub)``
    in a nursery: once started, ``hub`` publishes and delivers through Redis."""

    def __init__(
        self,
        client: coredis.Redis[bytes],
        *,
        outbound_size: int = DEFAULT_OUTBOUND_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        read_count: int = DEFAULT_READ_COUNT,
        block_ms: int = DEFAULT_BLOCK_MS,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
    ) -> None:
        self._client = client
        self._script = client.register_script(PUBLISH_SCRIPT)
        self._send, self._receive = trio.open_memory_channel[OutboundEvent](outbound_size)
        self._batch_size = batch_size
        self._read_count = read_count
        self._block_ms = block_ms
        self._flush_timeout = flush_timeout
        # Per relay, not per configured instance name: two processes started with one name must
        # not take each other's batches for duplicates.
        self._batch_key = BATCH_KEY_PREFIX + secrets.token_hex(8)
        self._batch_no = 0
        # The batch being published: kept until Redis confirms it, so a retry (after an outage,
        # or the flush at shutdown) sends it again under the same number.
        self._in_flight: tuple[int, list[OutboundEvent]] | None = None
        self._last_id = b"0-0"
        self._hub: EventsHub | None = None
        self._history_size = 0
        self._dropping = False
        self._published = 0
        self._dropped = 0
        self._malformed = 0
        self._epoch_changes = 0
        self._publishing = _Outage("publishing")
        self._reading = _Outage("reading")

    # -- what the hub calls ------------------------------------------------------------------

    def offer(self, event: OutboundEvent) -> None:
        """Queue one event for publishing. Synchronous; never blocks."""
        try:
            self._send.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self._dropped += 1
            if not self._dropping:
                # Once until the queue has drained: an outage or overload must not log per event.
                self._dropping = True
                logger.error(
                    "events relay: outbound queue full or relay stopped, dropping events",
                    extra={"event_type": event.type},
                )

    def statistics(self) -> RelayStatistics:
        return RelayStatistics(
            published=self._published,
            dropped=self._dropped,
            malformed=self._malformed,
            epoch_changes=self._epoch_changes,
            outages=self._publishing.count + self._reading.count,
            queued=self._send.statistics().current_buffer_used,
        )

    # -- running -----------------------------------------------------------------------------

    async def run(
        self, hub: EventsHub, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Adopt the shared epoch, load the stream's newest ``history_size`` entries into the
        hub's history, switch the hub to relay mode, then publish and read until cancelled.
        Cancelled, it first publishes what is still queued (within ``flush_timeout``)."""
        self._hub = hub
        self._history_size = hub.history_size
        hub.relay_through(self.offer, await self._shared_epoch())
        await self._load_history(hub)
        task_status.started()
        try:
            async with trio.open_nursery() as tasks:
                tasks.start_soon(self._publish_loop)
                tasks.start_soon(self._read_loop, hub)
        finally:
            self._send.close()
            with trio.move_on_after(self._flush_timeout) as flush:
                # Shielded: this runs because we were cancelled. The client's connections live
                # outside this nursery (open_redis_relay), so they still work here.
                flush.shield = True
                await self._flush()
            if flush.cancelled_caught:
                lost = self._receive.statistics().current_buffer_used
                if self._in_flight is not None:
                    lost += len(self._in_flight[1])
                logger.error(
                    "events relay: shutdown flush timed out, %d events not published", lost
                )

    async def _shared_epoch(self) -> str:
        # SET NX then GET: the first instance names the epoch, every other one adopts it.
        await self._client.set(EPOCH_KEY, secrets.token_hex(8), condition=coredis.PureToken.NX)
        epoch = await self._client.get(EPOCH_KEY)
        if epoch is None:  # flushed between the two commands: try again
            return await self._shared_epoch()
        return epoch.decode()

    async def _load_history(self, hub: EventsHub) -> None:
        entries = await self._client.xrevrange(STREAM_KEY, count=max(self._history_size, 1))
        if not entries:
            self._last_id = b"0-0"
            return
        for entry in reversed(entries):
            self._deliver(hub, entry, at_start=True)
        self._last_id = _entry_id(entries[0])

    # -- publishing --------------------------------------------------------------------------

    async def _publish_loop(self) -> None:
        while True:
            if self._in_flight is None:
                first = await self._receive.receive()
                batch = [first]
                while len(batch) < self._batch_size:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                self._batch_no += 1
                self._in_flight = (self._batch_no, batch)
            try:
                await self._publish_in_flight()
            except _CONNECTION_ERRORS as err:
                await self._publishing.wait(err)
                continue
            self._publishing.over()

    async def _publish_in_flight(self) -> None:
        assert self._in_flight is not None
        batch_no, batch = self._in_flight
        args: list[str | bytes | int] = [
            secrets.token_hex(8),  # the epoch to create if Redis has none (lost its data)
            max(self._history_size, MIN_STREAM_LENGTH),
            batch_no,
        ]
        for event in batch:
            args += (
                event.type,
                event.channel_id,
                b"1" if event.is_global else b"0",
                event.timestamp_ms,
                event.data_json,
            )
        try:
            await self._script(keys=[STREAM_KEY, SEQ_KEY, EPOCH_KEY, self._batch_key], args=args)
        except coredis.exceptions.ResponseError:
            # Redis refused the batch itself (not the connection): retrying cannot help, and a
            # batch that can never go out must not hold back every later one.
            logger.exception("events relay: redis refused a batch, %d events dropped", len(batch))
            self._dropped += len(batch)
        else:
            self._published += len(batch)
        self._in_flight = None
        if self._receive.statistics().current_buffer_used == 0:
            # Caught up: a later overflow is a new episode and is logged again.
            self._dropping = False

    async def _flush(self) -> None:
        while True:
            if self._in_flight is None:
                batch: list[OutboundEvent] = []
                while len(batch) < self._batch_size:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                if not batch:
                    return
                self._batch_no += 1
                self._in_flight = (self._batch_no, batch)
            try:
                await self._publish_in_flight()
            except _CONNECTION_ERRORS as err:
                await self._publishing.wait(err)

    # -- reading -----------------------------------------------------------------------------

    async def _read_loop(self, hub: EventsHub) -> None:
        check_epoch = False
        while True:
            try:
                if check_epoch:
                    # After an outage or a quiet spell: a flushed Redis restarts the stream at
                    # seq 1, below our last ID, where XREAD would never show it.
                    await self._check_epoch(hub)
                check_epoch = await self._read_batch(hub)
            except _CONNECTION_ERRORS as err:
                await self._reading.wait(err)
                check_epoch = True
                continue
            self._reading.over()

    async def _read_batch(self, hub: EventsHub) -> bool:
        """Deliver what follows the last ID; True when nothing came (check the epoch next)."""
        reply = await self._client.xread(
            {STREAM_KEY: self._last_id}, count=self._read_count, block=self._block_ms
        )
        if reply is None:
            return True
        for entry in reply.get(_STREAM_KEY_BYTES, ()):
            if self._deliver(hub, entry):
                continue
            if await self._check_epoch(hub):
                return False  # the stream started over: read it again from its start
            self._skip(_entry_id(entry), "its epoch is not the shared one")
        return False

    def _deliver(self, hub: EventsHub, entry: StreamEntry, *, at_start: bool = False) -> bool:
        """Hand one entry to the hub. False when it belongs to another epoch (not consumed)."""
        entry_id = _entry_id(entry)
        try:
            # The client does not decode replies, so the fields are bytes.
            event = parse_entry(entry_id, cast("dict[bytes, bytes]", entry.field_values))
        except MalformedEntry as err:
            self._skip(entry_id, str(err))
            return True
        if event.epoch != hub.epoch:
            # At start: older than the epoch key, not ours to replay; later: not consumed.
            return at_start
        self._last_id = entry_id
        hub.deliver_shared(
            event.seq,
            event.type,
            event.channel_id,
            event.data_json,
            event.timestamp_ms,
            is_global=event.is_global,
        )
        return True

    def _skip(self, entry_id: bytes, why: str) -> None:
        # Consumed, not delivered: the hub sees the next seq as a gap, so no replay claims
        # continuity across it.
        self._malformed += 1
        self._last_id = entry_id
        logger.warning("events relay: skipped stream entry %r: %s", entry_id, why)

    async def _check_epoch(self, hub: EventsHub) -> bool:
        """Adopt a new shared epoch if there is one; True if there was."""
        current = await self._client.get(EPOCH_KEY)
        if current is not None and current.decode() == hub.epoch:
            return False
        epoch = await self._shared_epoch()
        if epoch == hub.epoch:
            return False
        closed = hub.begin_epoch(epoch)
        self._epoch_changes += 1
        self._last_id = b"0-0"
        logger.warning(
            "events relay: the shared event stream started over (Redis lost its data): "
            "epoch %s, %d subscribers closed to reload",
            epoch,
            closed,
        )
        return True


@asynccontextmanager
async def open_redis_relay(
    url: str,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    block_ms: int = DEFAULT_BLOCK_MS,
    **options: int | float,
) -> AsyncIterator[RedisRelay]:
    """Connect to Redis at ``url`` and yield a relay; ``RelayUnavailable`` if Redis does not
    answer within ``connect_timeout``.

    Enter it outside the nursery that runs ``relay.run``: the client's connections then outlive
    that nursery's cancellation, which is what lets the relay flush at shutdown."""
    client: coredis.Redis[bytes] = coredis.Redis.from_url(
        url,
        connect_timeout=connect_timeout,
        # Longer than a blocking XREAD: a read that outlives it means the server is gone.
        stream_timeout=block_ms / 1000 + connect_timeout,
        # Our loops retry with backoff; coredis's own retries would only hide the outage.
        retry_policy=NoRetryPolicy(),
    )
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(client)
            with trio.fail_after(connect_timeout):
                await client.ping()
        except BaseException as err:
            if not _only_connection_errors(err):
                raise
            failure: RelayUnavailable | None = RelayUnavailable(
                f"redis at {url} is unreachable: {_first_leaf(err)!r}"
            )
        else:
            failure = None
            yield RedisRelay(client, block_ms=block_ms, **options)  # type: ignore[arg-type]
    if failure is not None:
        # Raised here, outside the client's task group, so the caller gets it bare.
        raise failure


def _leaves(err: BaseException) -> Sequence[BaseException]:
    if isinstance(err, BaseExceptionGroup):
        return [leaf for sub in err.exceptions for leaf in _leaves(sub)]
    return [err]


def _first_leaf(err: BaseException) -> BaseException:
    return _leaves(err)[0]


def _only_connection_errors(err: BaseException) -> bool:
    return all(isinstance(leaf, (*_CONNECTION_ERRORS, trio.TooSlowError)) for leaf in _leaves(err))


def _entry_id(entry: StreamEntry) -> bytes:
    entry_id = entry.identifier
    return entry_id if isinstance(entry_id, bytes) else entry_id.encode()
