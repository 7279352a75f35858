"""Events across instances through a real Redis (tests/services): several real hubs, each with
its own relay, sharing one server. No mocks; every wait is on an event or under a deadline."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import coredis
import pytest
import trio
import trio.lowlevel

from loop_server.events import CLOSE_GOING_AWAY, EventsHub, Subscription
from loop_server.events._envelope import encode_data, encode_envelope, envelope_from_parts
from loop_server.events._event import OutboundEvent
from loop_server.events._redis_relay import RedisRelay, RelayUnavailable, open_redis_relay
from loop_server.events._redis_stream import EPOCH_KEY, STREAM_KEY
from loop_server.websocket_close import EPOCH_CHANGED_REASON, REPLAY_GAP_REASON
from tests.services.servers import RedisServer, free_port

DEADLINE = 20

#: coredis (6.9) drops a lost connection's anyio memory streams without closing them; their
#: ResourceWarnings surface when they are collected (here, at the end of the test).
OUTAGE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@asynccontextmanager
async def relayed_hub(
    url: str, *, history_size: int = 1000, **options: int | float
) -> AsyncIterator[tuple[EventsHub, RedisRelay]]:
    """A hub in relay mode, its relay's tasks running until the block ends."""
    hub = EventsHub(history_size=history_size)
    async with open_redis_relay(url, **options) as relay, trio.open_nursery() as nursery:
        await nursery.start(relay.run, hub)
        yield hub, relay
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[coredis.Redis[bytes]]:
    client: coredis.Redis[bytes] = coredis.Redis.from_url(url)
    async with client:
        yield client


async def receive(subscription: Subscription, count: int) -> list[dict[str, object]]:
    """The next ``count`` envelopes delivered to ``subscription``."""
    envelopes: list[dict[str, object]] = []
    with trio.fail_after(DEADLINE):
        while len(envelopes) < count:
            envelopes += [json.loads(e.payload) for e in await subscription.receive_batch()]
    assert len(envelopes) == count, envelopes[count:]
    return envelopes


def seqs(envelopes: list[dict[str, object]]) -> list[object]:
    return [e["seq"] for e in envelopes]


def test_envelope_from_parts_is_encode_envelope() -> None:
    for data in ({"content": 'héllo \u2028 "q"'}, None, {"n": 1, "nested": {"a": [1, 2]}}):
        assert envelope_from_parts(
            "message.created", "C\u00e9", encode_data(data), 1767225600123, 42
        ) == encode_envelope("message.created", "C\u00e9", data, 1767225600123, 42)


async def test_two_instances_deliver_one_order(redis_url: str) -> None:
    async with relayed_hub(redis_url) as (a, _), relayed_hub(redis_url) as (b, _):
        assert a.epoch == b.epoch
        on_a, on_b = a.register(queue_size=1000), b.register(queue_size=1000)
        for i in range(300):
            (a if i % 2 == 0 else b).broadcast("message.created", f"C{i % 3}", {"i": i})
            if i % 7 == 0:
                await trio.lowlevel.checkpoint()  # let batches of different sizes form
        got_a, got_b = await receive(on_a, 300), await receive(on_b, 300)
        assert got_a == got_b
        assert seqs(got_a) == list(range(1, 301))
        # Each instance's own events keep the order it broadcast them in.
        order = [e["data"]["i"] for e in got_a]  # type: ignore[index]
        assert [i for i in order if i % 2 == 0] == list(range(0, 300, 2))
        assert [i for i in order if i % 2 == 1] == list(range(1, 300, 2))
        assert sorted(order) == list(range(300))
        assert a.seq == b.seq == 300
        assert on_a.queued == on_b.queued == 0


async def test_filters_and_global_events_across_instances(redis_url: str) -> None:
    async with relayed_hub(redis_url) as (a, _), relayed_hub(redis_url) as (b, _):
        only_c1 = b.register(["C1"])
        a.broadcast("message.created", "C2", {"x": 1})
        a.broadcast_channel_created("", "C9")
        a.broadcast("message.created", "C1", {"x": 2})
        got = await receive(only_c1, 2)
        assert [(e["type"], e["seq"]) for e in got] == [
            ("channel.created", 2),
            ("message.created", 3),
        ]


async def test_replay_on_the_other_instance(redis_url: str) -> None:
    async with relayed_hub(redis_url) as (a, _), relayed_hub(redis_url) as (b, _):
        seen_on_b = b.register()
        for i in range(20):
            a.broadcast("message.created", "C1", {"i": i})
        await receive(seen_on_b, 20)
        # A client saw seq 12 on A, reconnects to B.
        resumed = b.register(since=12, epoch=a.epoch)
        assert not resumed.replay_truncated
        for i in range(20, 25):
            a.broadcast("message.created", "C1", {"i": i})
        assert seqs(await receive(resumed, 13)) == list(range(13, 26))
        stale = b.register(since=3, epoch="another-run")
        assert stale.replay_truncated


async def test_instance_started_later_replays_from_the_stream(redis_url: str) -> None:
    async with relayed_hub(redis_url) as (a, _):
        seen = a.register()
        for i in range(30):
            a.broadcast("message.created", "C1", {"i": i})
        await receive(seen, 30)
        async with relayed_hub(redis_url, history_size=10) as (late, _):
            assert late.epoch == a.epoch
            assert late.seq == 30
            assert late.statistics().retained >= 10
            resumed = late.register(since=25, epoch=a.epoch)
            assert seqs(await receive(resumed, 5)) == [26, 27, 28, 29, 30]
            # Older than what it retains: truncated, never a replay with a hole.
            assert late.register(since=2, epoch=a.epoch).replay_truncated


async def test_malformed_entries_are_skipped(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with relayed_hub(redis_url) as (a, relay), redis_client(redis_url) as client:
        seen = a.register()
        a.broadcast("message.created", "C1", {"i": 1})
        a.broadcast("message.created", "C1", {"i": 2})
        await receive(seen, 2)
        with caplog.at_level(logging.WARNING, logger="loop_server.events"):
            await client.xadd(STREAM_KEY, {"t": "message.created"}, identifier="3-0")
            await client.xadd(
                STREAM_KEY,
                {"e": a.epoch, "t": "x", "c": "C1", "g": "0", "ts": "1", "d": "42"},
                identifier="4-0",
            )
            a.broadcast("message.created", "C1", {"i": 3})
            got = await receive(seen, 1)
        assert seqs(got) == [5]
        assert relay.statistics().malformed == 2
        assert sum("skipped stream entry" in r.getMessage() for r in caplog.records) == 2
        # The skipped seqs are a gap: no replay claims to cover them.
        assert a.register(since=2, epoch=a.epoch).replay_truncated
        assert not a.register(since=4, epoch=a.epoch).replay_truncated


async def test_flushall_starts_a_new_epoch(redis_url: str, redis_server: RedisServer) -> None:
    async with (
        relayed_hub(redis_url, block_ms=100) as (a, _),
        relayed_hub(redis_url, block_ms=100) as (b, relay_b),
    ):
        old_epoch = a.epoch
        on_a, on_b = a.register(), b.register()
        a.broadcast("message.created", "C1", {"i": 1})
        await receive(on_b, 1)
        assert redis_server.command("FLUSHALL") == b"+OK"
        with trio.fail_after(DEADLINE):
            await on_b.wait_closed()
            await on_a.wait_closed()
        assert (on_b.close_code, on_b.close_reason) == (CLOSE_GOING_AWAY, EPOCH_CHANGED_REASON)
        assert a.epoch == b.epoch != old_epoch
        assert relay_b.statistics().epoch_changes == 1
        # A client of the old run is told to reload; the new run counts from 1 again.
        assert b.register(since=1, epoch=old_epoch).replay_truncated
        fresh = b.register()
        a.broadcast("message.created", "C1", {"i": 2})
        assert seqs(await receive(fresh, 1)) == [1]


@OUTAGE
async def test_redis_restart_mid_stream(redis_url: str, redis_server: RedisServer) -> None:
    """Redis dies, losing everything (no persistence), with a batch maybe in flight and more
    queued behind it. The relays survive and retry; once Redis is back everything broadcast
    after the kill is published once, in a new epoch, in order. The batch that was in flight
    when Redis died was either accepted (and lost with Redis's data unless already delivered:
    clients reload, the epoch changed) or not (then it is retried and published): at most
    once either way, never twice."""
    async with (
        relayed_hub(redis_url, block_ms=100) as (a, relay_a),
        relayed_hub(redis_url, block_ms=100) as (b, _),
    ):
        on_b = b.register()
        for i in range(50):
            a.broadcast("message.created", "C1", {"i": i})
        await receive(on_b, 50)
        for i in range(50, 60):
            a.broadcast("message.created", "C1", {"i": i})
        for _ in range(3):
            await (
                trio.lowlevel.checkpoint()
            )  # the publisher sends the batch; its reply will not come
        redis_server.kill()
        for i in range(60, 80):
            a.broadcast("message.created", "C1", {"i": i})
        await trio.sleep(0.3)  # an outage: both loops fail and back off
        redis_server.restart()
        with trio.fail_after(DEADLINE):
            await on_b.wait_closed()
        assert (on_b.close_code, on_b.close_reason) == (CLOSE_GOING_AWAY, EPOCH_CHANGED_REASON)
        fresh = b.register(since=0, epoch=b.epoch)
        a.broadcast("message.created", "C1", {"i": 80})
        new_epoch: list[dict[str, object]] = []
        with trio.fail_after(DEADLINE):
            while not new_epoch or new_epoch[-1]["data"]["i"] != 80:  # type: ignore[index]
                new_epoch += [json.loads(e.payload) for e in await fresh.receive_batch()]
        assert seqs(new_epoch) == list(range(1, len(new_epoch) + 1))
        values = [e["data"]["i"] for e in new_epoch]  # type: ignore[index]
        assert values == sorted(values)
        assert len(values) == len(set(values))
        assert set(range(60, 81)) <= set(values) <= set(range(50, 81))
        statistics = relay_a.statistics()
        assert statistics.outages >= 1
        assert statistics.dropped == 0
        assert statistics.epoch_changes == 1
    gc.collect()


async def test_retried_batch_is_published_once(redis_url: str) -> None:
    """A batch whose reply was lost goes again under the same number: the script skips it."""
    async with relayed_hub(redis_url) as (a, relay), redis_client(redis_url) as client:
        seen = a.register()
        batch = [OutboundEvent("message.created", "C1", b'{"i":1}', 1)]
        relay._batch_no += 1
        relay._in_flight = (relay._batch_no, batch)
        await relay._publish_in_flight()
        relay._in_flight = (relay._batch_no, batch)
        await relay._publish_in_flight()
        a.broadcast("message.created", "C1", {"i": 2})
        assert seqs(await receive(seen, 2)) == [1, 2]
        assert await client.xlen(STREAM_KEY) == 2


async def test_shutdown_flushes_what_is_queued(redis_url: str) -> None:
    async with redis_client(redis_url) as client:
        async with relayed_hub(redis_url) as (a, _):
            for i in range(500):
                a.broadcast("message.created", "C1", {"i": i})
            # Leaving the block cancels the relay with everything still queued.
        assert await client.xlen(STREAM_KEY) == 500
        async with relayed_hub(redis_url) as (later, _):
            assert later.seq == 500


async def test_broadcasts_after_the_relay_stopped_are_counted(redis_url: str) -> None:
    hub = EventsHub()
    async with open_redis_relay(redis_url) as relay:
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run, hub)
            nursery.cancel_scope.cancel()
        hub.broadcast("message.created", "C1", {"i": 1})
        assert relay.statistics().dropped == 1


@OUTAGE
async def test_unreachable_redis_at_start_fails_fast() -> None:
    with trio.fail_after(DEADLINE), pytest.raises(RelayUnavailable, match="unreachable"):
        async with open_redis_relay(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=1):
            pass
    gc.collect()


@OUTAGE
async def test_outbound_queue_full_drops_and_counts(
    redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with relayed_hub(redis_url, outbound_size=10, block_ms=100) as (a, relay):
        redis_server.kill()
        with caplog.at_level(logging.ERROR, logger="loop_server.events"):
            for i in range(100):
                a.broadcast("message.created", "C1", {"i": i})
        assert relay.statistics().dropped >= 80
        assert sum("dropping events" in r.getMessage() for r in caplog.records) == 1
        redis_server.restart()
    gc.collect()


async def test_shared_epoch_key(redis_url: str) -> None:
    async with relayed_hub(redis_url) as (a, _), redis_client(redis_url) as client:
        assert (await client.get(EPOCH_KEY)) == a.epoch.encode()


async def test_resume_ahead_of_a_lagging_instance(redis_url: str) -> None:
    """A client saw seq 2 on A and reconnects to B before B's reader has it: no truncation, B
    starts the subscription once it reaches seq 2."""
    async with relayed_hub(redis_url) as (a, _), relayed_hub(redis_url) as (b, _):
        resumed = b.register(since=2, epoch=a.epoch)
        assert not resumed.replay_truncated
        assert resumed.start_seq == 2
        on_b = b.register()
        a.broadcast("message.created", "C1", {"i": 1})
        a.broadcast_channel_created("", "C2")  # global: not before its turn either
        a.broadcast("message.created", "C1", {"i": 3})
        a.broadcast_channel_created("", "C4")
        await receive(on_b, 4)
        assert seqs(await receive(resumed, 2)) == [3, 4]
        # Far ahead (more than the history) is still truncated.
        assert b.register(since=b.seq + b.history_size + 1, epoch=a.epoch).replay_truncated


def test_waiting_subscription_closed_by_a_gap() -> None:
    hub = EventsHub(history_size=100)
    handed: list[OutboundEvent] = []
    hub.relay_through(handed.append, "E")
    waiting = hub.register(["C1"], since=3, epoch="E")
    hub.set_channels(waiting, ["C2"])  # still waiting: not indexed early
    hub.deliver_shared(1, "message.created", "C2", b"{}", 1)
    assert waiting.queued == 0
    # seq 2..5 never arrive: the events after since=3 are lost to this hub.
    hub.deliver_shared(6, "message.created", "C2", b"{}", 1)
    assert (waiting.close_code, waiting.close_reason) == (CLOSE_GOING_AWAY, REPLAY_GAP_REASON)
    assert hub.statistics().subscribers == 0
    hub.broadcast("message.created", "C2", {"x": 1})
    assert [e.type for e in handed] == ["message.created"]
