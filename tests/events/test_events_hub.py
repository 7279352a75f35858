"""The events hub on its own: no sockets, no sleeping.

Rules for every test in tests/events/: localhost only (127.0.0.1, port 0), every I/O wait under
an absolute deadline (``trio.fail_after``), and never ``sleep`` to wait for a result: wait on
the event itself (a frame, a pong, ``wait_subscriber_count``, ``wait_all_tasks_blocked``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import trio
import trio.testing

from loop_server.domain import Message
from loop_server.events import (
    AGENT_STATUS,
    CLOSE_GOING_AWAY,
    CLOSE_SLOW_CONSUMER,
    MESSAGE_CREATED,
    MESSAGE_STREAMING,
    Event,
    EventsHub,
    Subscription,
)
from loop_server.protocols import EventBroadcaster


def make_hub(**options: object) -> EventsHub:
    return EventsHub(clock_ms=lambda: 1767225600123, epoch="run-1", **options)  # type: ignore[arg-type]


def take(subscription: Subscription) -> list[dict[str, object]]:
    """Decoded envelopes queued for ``subscription`` (empties its queue)."""
    try:
        events = subscription.receive_batch_nowait()
    except trio.WouldBlock:
        return []
    return [json.loads(event.payload) for event in events]


def seqs(subscription: Subscription) -> list[int]:
    return [int(envelope["seq"]) for envelope in take(subscription)]  # type: ignore[call-overload]


def message(channel_id: str = "C1", content: str = "hi", is_bot: bool = False) -> Message:
    return Message(
        id=7,
        channel_id=channel_id,
        msg_id="m-7",
        author_id="U1",
        author_name="ada",
        content=content,
        is_bot=is_bot,
        is_processed=False,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_hub_is_an_event_broadcaster() -> None:
    broadcaster: EventBroadcaster = make_hub()
    assert callable(broadcaster.broadcast_message_created)


def test_envelopes_match_the_spec() -> None:
    hub = make_hub()
    subscription = hub.register()
    hub.broadcast_message_created(message(is_bot=True))
    hub.broadcast_message_streaming("C1", "partial")
    hub.broadcast_agent_status("C1", "running")
    hub.broadcast_agent_status("C1", "error", "boom")
    assert take(subscription) == [
        {
            "type": MESSAGE_CREATED,
            "channel_id": "C1",
            "data": {
                "msg_id": "m-7",
                "author_id": "U1",
                "author_name": "ada",
                "content": "hi",
                "is_bot": True,
            },
            "timestamp": 1767225600123,
            "seq": 1,
        },
        {
            "type": MESSAGE_STREAMING,
            "channel_id": "C1",
            "data": {"content": "partial"},
            "timestamp": 1767225600123,
            "seq": 2,
        },
        {
            "type": AGENT_STATUS,
            "channel_id": "C1",
            "data": {"status": "running"},
            "timestamp": 1767225600123,
            "seq": 3,
        },
        {
            "type": AGENT_STATUS,
            "channel_id": "C1",
            "data": {"status": "error", "error": "boom"},
            "timestamp": 1767225600123,
            "seq": 4,
        },
    ]


def test_envelope_key_order_and_compact_utf8() -> None:
    hub = make_hub()
    subscription = hub.register()
    hub.broadcast_message_streaming("C1", "héllo")
    (event,) = subscription.receive_batch_nowait()
    assert (
        event.payload
        == (
            '{"type":"message.streaming","channel_id":"C1","data":{"content":"héllo"},'
            '"timestamp":1767225600123,"seq":1}'
        ).encode()
    )


def test_each_event_is_encoded_once_and_shared() -> None:
    hub = make_hub()
    first, second = hub.register(), hub.register(["C1"])
    hub.broadcast_agent_status("C1", "running")
    (a,), (b,) = first.receive_batch_nowait(), second.receive_batch_nowait()
    assert a is b


def test_filter_by_channel() -> None:
    hub = make_hub()
    only_c1 = hub.register(["C1"])
    everything = hub.register()
    c2_and_c3 = hub.register(["C2", "C3"])
    empty_list = hub.register([])
    hub.broadcast_agent_status("C1", "running")
    hub.broadcast_agent_status("C3", "running")
    assert seqs(only_c1) == [1]
    assert seqs(everything) == [1, 2]
    assert seqs(c2_and_c3) == [2]
    assert seqs(empty_list) == [1, 2]


def test_set_channels_replaces_the_filter() -> None:
    hub = make_hub()
    subscription = hub.register(["C1"])
    hub.set_channels(subscription, ["C2"])
    assert subscription.channels == frozenset({"C2"})
    hub.broadcast_agent_status("C1", "running")
    hub.broadcast_agent_status("C2", "running")
    assert seqs(subscription) == [2]
    hub.set_channels(subscription, [])
    assert subscription.channels is None
    hub.broadcast_agent_status("C9", "running")
    assert seqs(subscription) == [3]
    hub.set_channels(subscription, ["C1"])
    hub.broadcast_agent_status("C9", "running")
    hub.broadcast_agent_status("C1", "running")
    assert seqs(subscription) == [5]


def test_seq_counts_every_event_and_epoch_names_the_run() -> None:
    hub = EventsHub()
    assert hub.seq == 0
    assert hub.epoch and hub.epoch != EventsHub().epoch
    for _ in range(3):
        hub.broadcast_agent_status("C1", "running")
    assert hub.seq == 3


def test_replay_since_then_live_without_gap_or_duplicate() -> None:
    hub = make_hub()
    for channel in ("C1", "C2", "C1", "C1"):
        hub.broadcast_agent_status(channel, "running")
    subscription = hub.register(["C1"], since=1)
    assert not subscription.replay_truncated
    assert subscription.start_seq == 4
    hub.broadcast_agent_status("C1", "completed")
    assert seqs(subscription) == [3, 4, 5]


def test_replay_is_not_bounded_by_the_queue_size() -> None:
    hub = make_hub(queue_size=2)
    for _ in range(10):
        hub.broadcast_agent_status("C1", "running")
    subscription = hub.register(since=0)
    hub.broadcast_agent_status("C1", "running")
    assert not subscription.closed
    assert seqs(subscription) == list(range(1, 12))
    # Once the backlog is taken, the ordinary bound applies again.
    for _ in range(3):
        hub.broadcast_agent_status("C1", "running")
    assert subscription.close_code == CLOSE_SLOW_CONSUMER


def test_replay_at_current_seq_is_empty_and_not_truncated() -> None:
    hub = make_hub()
    hub.broadcast_agent_status("C1", "running")
    subscription = hub.register(since=1)
    assert not subscription.replay_truncated
    assert take(subscription) == []


@pytest.mark.parametrize(
    ("since", "epoch"),
    [
        (1, None),  # older than the retained history
        (-3, None),  # not a seq at all (an unparsable ?since= arrives as -1)
        (99, None),  # ahead of this run: from another one
        (4, "another-run"),  # named another run
    ],
)
def test_replay_truncated(since: int, epoch: str | None) -> None:
    hub = make_hub(history_size=3)
    for _ in range(5):
        hub.broadcast_agent_status("C1", "running")
    subscription = hub.register(since=since, epoch=epoch)
    assert subscription.replay_truncated
    assert take(subscription) == []
    hub.broadcast_agent_status("C1", "running")
    assert seqs(subscription) == [6]


def test_replay_from_oldest_retained_and_same_epoch() -> None:
    hub = make_hub(history_size=3)
    for _ in range(5):
        hub.broadcast_agent_status("C1", "running")
    subscription = hub.register(since=2, epoch="run-1")
    assert not subscription.replay_truncated
    assert seqs(subscription) == [3, 4, 5]
    assert hub.statistics().retained == 3


def test_replay_keeps_only_the_newest_stream_text() -> None:
    hub = make_hub()
    hub.broadcast_message_streaming("C1", "a")
    hub.broadcast_message_streaming("C2", "x")
    hub.broadcast_message_streaming("C1", "ab")
    hub.broadcast_agent_status("C1", "completed")
    subscription = hub.register(since=0)
    assert seqs(subscription) == [2, 3, 4]


def test_queued_streaming_is_replaced_by_the_newer_one() -> None:
    hub = make_hub(queue_size=3)
    subscription = hub.register()
    for n in range(50):
        hub.broadcast_message_streaming("C1", "x" * n)
    hub.broadcast_message_streaming("C2", "other")
    envelopes = take(subscription)
    assert [e["seq"] for e in envelopes] == [50, 51]
    assert envelopes[0]["data"] == {"content": "x" * 49}
    assert not subscription.closed
    assert hub.statistics().events_coalesced == 49


def test_replacing_streaming_keeps_seq_order() -> None:
    hub = make_hub(queue_size=10)
    subscription = hub.register()
    hub.broadcast_message_streaming("C1", "a")
    hub.broadcast_agent_status("C1", "running")
    hub.broadcast_message_streaming("C1", "ab")
    assert seqs(subscription) == [2, 3]


def test_superseded_entries_do_not_grow_the_queue_without_bound() -> None:
    hub = make_hub(queue_size=2)
    subscription = hub.register()
    for n in range(1000):
        # Alternate two streams so that neither is ever the newest entry when replaced.
        hub.broadcast_message_streaming("C1" if n % 2 else "C2", str(n))
    assert subscription.queued == 2  # one slot per stream, however many were replaced
    assert seqs(subscription) == [999, 1000]


def test_slow_consumer_is_closed_and_others_keep_receiving() -> None:
    hub = make_hub(queue_size=2)
    slow = hub.register()
    healthy = hub.register(queue_size=100)
    for _ in range(3):
        hub.broadcast_agent_status("C1", "running")
    assert slow.closed
    assert slow.close_code == CLOSE_SLOW_CONSUMER
    assert slow.close_reason == "slow consumer"
    with pytest.raises(trio.EndOfChannel):
        slow.receive_batch_nowait()
    hub.broadcast_agent_status("C1", "running")
    assert seqs(healthy) == [1, 2, 3, 4]
    stats = hub.statistics()
    assert stats.subscribers == 1
    assert stats.slow_consumers_closed == 1
    assert stats.events_dropped == 2


def test_filtered_out_events_do_not_count_against_the_queue() -> None:
    hub = make_hub(queue_size=1)
    subscription = hub.register(["C1"])
    for _ in range(10):
        hub.broadcast_agent_status("C2", "running")
    assert not subscription.closed


def test_unregister_twice_is_harmless() -> None:
    hub = make_hub()
    subscription = hub.register(["C1"])
    hub.unregister(subscription)
    hub.unregister(subscription)
    hub.set_channels(subscription, ["C2"])
    hub.broadcast_agent_status("C1", "running")
    hub.broadcast_agent_status("C2", "running")
    assert hub.statistics().subscribers == 0
    assert hub._by_channel == {}
    assert hub._all == {}
    with pytest.raises(trio.EndOfChannel):
        subscription.receive_batch_nowait()


def test_statistics() -> None:
    hub = make_hub(history_size=2)
    first, second = hub.register(["C1"]), hub.register()
    for _ in range(3):
        hub.broadcast_agent_status("C1", "running")
    hub.broadcast_agent_status("C2", "running")
    assert first.queued == 3
    stats = hub.statistics()
    assert (stats.subscribers, stats.max_queue_depth, stats.total_queue_depth) == (2, 4, 7)
    assert (stats.events_published, stats.retained, stats.seq) == (4, 2, 4)
    assert (stats.slow_consumers_closed, stats.events_dropped) == (0, 0)
    assert stats.epoch == "run-1"
    take(second)
    assert hub.statistics().max_queue_depth == 3


def test_unencodable_data_is_dropped_without_using_a_seq() -> None:
    hub = make_hub()
    subscription = hub.register()
    assert hub.broadcast("custom", "C1", {"bad": object()}) is None
    assert hub.broadcast("custom", "C1", {"nan": float("nan")}) is None
    event = hub.broadcast("custom", "C1", {"ok": 1})
    assert isinstance(event, Event) and event.seq == 1
    assert seqs(subscription) == [1]


def test_close_all_closes_every_subscription_and_later_ones() -> None:
    hub = make_hub()
    subscriptions = [hub.register(), hub.register(["C1"])]
    assert hub.close_all() == 2
    for subscription in subscriptions:
        assert subscription.close_code == CLOSE_GOING_AWAY
        assert subscription.close_reason == "server shutting down"
    late = hub.register()
    assert late.close_code == CLOSE_GOING_AWAY
    assert hub.statistics().subscribers == 0


def test_queue_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EventsHub(queue_size=0)
    with pytest.raises(ValueError):
        make_hub().register(queue_size=0)


async def test_receive_batch_waits_for_events() -> None:
    hub = make_hub()
    subscription = hub.register()
    received: list[list[int]] = []

    async def consume() -> None:
        received.append([event.seq for event in await subscription.receive_batch()])

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await trio.testing.wait_all_tasks_blocked()
            hub.broadcast_agent_status("C1", "running")
            hub.broadcast_agent_status("C1", "completed")
    assert received == [[1, 2]]


async def test_close_ends_a_waiting_consumer_and_drops_what_was_queued() -> None:
    hub = make_hub()
    subscription = hub.register()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:

            async def consume(task_status: trio.TaskStatus[None]) -> None:
                task_status.started()
                with pytest.raises(trio.EndOfChannel):
                    await subscription.receive_batch()

            await nursery.start(consume)
            await trio.testing.wait_all_tasks_blocked()
            hub.unregister(subscription)
    queued = hub.register()
    hub.broadcast_agent_status("C1", "running")
    assert queued.queued == 1
    hub.unregister(queued)
    assert queued.queued == 0
    with pytest.raises(trio.EndOfChannel):
        queued.receive_batch_nowait()


async def test_a_streaming_slot_the_writer_took_is_not_reused() -> None:
    hub = make_hub()
    subscription = hub.register()
    hub.broadcast_message_streaming("C1", "a")
    assert seqs(subscription) == [1]
    # The writer has the first text: the next one is a new entry, not a silent replacement.
    hub.broadcast_message_streaming("C1", "ab")
    hub.broadcast_message_streaming("C1", "abc")
    assert [e["data"] for e in take(subscription)] == [{"content": "abc"}]


async def test_receive_batch_is_cancellable() -> None:
    hub = make_hub()
    subscription = hub.register()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(subscription.receive_batch)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    # The cancelled wait lost nothing: the next event reaches the next wait.
    hub.broadcast_agent_status("C1", "running")
    with trio.fail_after(5):
        assert [e.seq for e in await subscription.receive_batch()] == [1]


async def test_wait_subscriber_count() -> None:
    hub = make_hub()
    subscription = hub.register()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hub.wait_subscriber_count, 0)
            await trio.testing.wait_all_tasks_blocked()
            hub.unregister(subscription)
        await hub.wait_subscriber_count(0)
