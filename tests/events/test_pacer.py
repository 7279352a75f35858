"""When ``/api/ws`` writers flush (``events/_pacer.py``): at once after a quiet spell, in waves
while events are dense, never stuck, never the cause of a 4008.

The pacer's own rules run on pytest-trio's ``autojump_clock`` (virtual time: what is measured
is when a writer is let go, not how fast the machine is). The end-to-end tests use a real
server over loopback and the rules of the other tests/events modules.
"""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from loop_server.events import EventsHub, WritePacer
from loop_server.serving._serve import _PacingWith
from tests.events.events_helpers import RawClient, StartServer, client_frame, raw_connect

DEADLINE = 10.0


class Seq:
    """What the hub has published so far, for a pacer without a hub."""

    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        return self.value


async def test_with_no_request_in_flight_every_event_goes_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seq = Seq()
    pacer = WritePacer(seq, floor=0.01, ceiling=0.1)
    before = trio.current_time()
    for value in range(1, 6):
        seq.value = value
        await pacer.wait_turn(value)
        # Another writer of the same event goes with it.
        await pacer.wait_turn(value)
    assert trio.current_time() == before
    assert pacer.waves == 5
    assert not pacer.dense


async def release_writers(pacer: WritePacer, newest: int, writers: int) -> list[float]:
    """``writers`` writers holding events up to ``newest``; when each was let go."""
    released: list[float] = []

    async def writer() -> None:
        await pacer.wait_turn(newest)
        released.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for _ in range(writers):
            nursery.start_soon(writer)
    return released


async def release_busy_writers(
    pacer: WritePacer,
    seq: Seq,
    clock: trio.testing.MockClock,
    *,
    writers: int,
    each: float,
) -> None:
    """``writers`` writers holding events up to ``seq.value``; once let go, each takes
    ``each`` seconds of virtual time and publishes one more event."""
    newest = seq.value

    async def writer() -> None:
        await pacer.wait_turn(newest)
        clock.jump(each)
        seq.value += 1

    async with trio.open_nursery() as nursery:
        for _ in range(writers):
            nursery.start_soon(writer)


async def test_while_a_request_is_served_writers_go_together_in_one_led_wave(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seq = Seq()
    pacer = WritePacer(seq, floor=0.01, ceiling=0.1, chunk=16)
    pacer.request_started()
    seq.value = 1
    before = trio.current_time()
    released = await release_writers(pacer, 1, 200)
    assert len(released) == 200
    assert pacer.waves == 1  # one wave, released in 13 chunks
    assert set(released) == {before}  # nothing published during it: no gap was added
    seq.value = 2
    released = await release_writers(pacer, 2, 10)
    assert set(released) == {before}  # and the next event is not held back
    assert pacer.waves == 2
    pacer.request_finished()


async def test_events_published_during_a_wave_wait_for_the_gap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seq = Seq()
    pacer = WritePacer(seq, floor=0.01, ceiling=0.5, ratio=4.0, chunk=1)
    pacer.request_started()
    seq.value = 1
    started = trio.current_time()
    # Other work runs between chunks: time passes and events are published meanwhile.
    await release_busy_writers(pacer, seq, autojump_clock, writers=5, each=0.01)
    assert pacer.waves == 1
    assert pacer.dense and pacer.behind
    later = await release_writers(pacer, seq.value, 3)
    assert len(set(later)) == 1
    # The release spanned the writers' passes (3 to 5 jumps of 10 ms, depending on where the
    # leader's last pass fell): the gap is 4× that, well above the floor.
    assert 4 * 0.03 - 1e-9 <= later[0] - started <= 4 * 0.05 + 1e-9
    assert pacer.waves == 2
    pacer.request_finished()


async def test_the_gap_stays_within_its_bounds(autojump_clock: trio.testing.MockClock) -> None:
    seq = Seq()
    pacer = WritePacer(seq, floor=0.01, ceiling=0.05, ratio=4.0, chunk=1)
    pacer.request_started()
    seq.value = 1
    started = trio.current_time()
    # A very slow wave: 4× its release would be far past the ceiling.
    await release_busy_writers(pacer, seq, autojump_clock, writers=3, each=0.1)
    later = await release_writers(pacer, seq.value, 2)
    # The wave's start plus the ceiling is already past: the next wave is due at once.
    assert set(later) == {trio.current_time()}
    assert trio.current_time() >= started + 0.05
    pacer.request_finished()


async def test_a_cancelled_leader_releases_everyone_parked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seq = Seq()
    pacer = WritePacer(seq, floor=1.0, ceiling=1.0)
    pacer.request_started()
    seq.value = 1
    await pacer.wait_turn(1)  # the first wave, then a 1 s gap is due...
    pacer._next_wave_at = trio.current_time() + 1.0  # ...as if events had kept coming
    seq.value = 2
    released = 0

    async def writer() -> None:
        nonlocal released
        await pacer.wait_turn(2)
        released += 1

    async with trio.open_nursery() as outer:
        leader_scope = trio.CancelScope()

        async def leader() -> None:
            with leader_scope:
                await pacer.wait_turn(2)

        outer.start_soon(leader)
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(10):
            outer.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        before = trio.current_time()
        leader_scope.cancel()  # its connection ended while it waited for the wave
    assert released == 10
    assert trio.current_time() == before  # nobody waited for the gap after all
    assert leader_scope.cancelled_caught


async def test_hurry_starts_the_next_wave_now(autojump_clock: trio.testing.MockClock) -> None:
    seq = Seq()
    pacer = WritePacer(seq, floor=5.0, ceiling=5.0)
    pacer.request_started()
    pacer._next_wave_at = trio.current_time() + 5.0
    seq.value = 2
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pacer.wait_turn, 2)
        await trio.testing.wait_all_tasks_blocked()
        before = trio.current_time()
        pacer.hurry()
    assert trio.current_time() == before
    assert pacer.waves == 1


async def test_the_hub_hurries_a_wave_before_any_queue_could_overflow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = EventsHub(queue_size=8)
    hub.pacer.request_started()
    subscription = hub.register()
    hub.broadcast_agent_status("C1", "running")
    await hub.pacer.wait_turn(1)  # wave 1
    hub.pacer._next_wave_at = trio.current_time() + 10.0  # a wave a long way off
    waiting = trio.Event()

    async def writer() -> None:
        await hub.pacer.wait_turn(hub.seq)
        waiting.set()

    async with trio.open_nursery() as nursery:
        hub.broadcast_agent_status("C1", "running")
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        assert not waiting.is_set()
        before = trio.current_time()
        for _ in range(3):  # 4 events since the wave began: half of 8
            hub.broadcast_agent_status("C1", "running")
        await waiting.wait()
        assert trio.current_time() == before
    assert not subscription.closed
    assert subscription.queued == 5


async def test_the_listener_counts_the_requests_it_serves() -> None:
    pacer = WritePacer(lambda: 0)
    seen: list[int] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        seen.append(pacer._requests)
        if scope["path"] == "/fail":
            raise RuntimeError("a failing request still ends")

    wrapped = _PacingWith(app, pacer)
    await wrapped({"type": "http", "path": "/"}, None, None)
    with pytest.raises(RuntimeError):
        await wrapped({"type": "http", "path": "/fail"}, None, None)
    await wrapped({"type": "lifespan", "path": ""}, None, None)
    assert seen == [1, 1, 0]
    assert pacer._requests == 0


async def read_seqs(client: RawClient, count: int) -> list[int]:
    seqs = []
    for _ in range(count):
        opcode, payload = await client.receive_frame()
        assert opcode == 0x1
        seqs.append(json.loads(payload)["seq"])
    return seqs


async def test_a_dense_stream_is_written_in_waves_whole_and_in_order(
    start_server: StartServer,
) -> None:
    """While a request is being served, 300 events published one per scheduler pass reach
    20 subscribers complete and in order, in far fewer waves than events; their small queues
    (16) are not closed as slow, because the hub hurries a wave before pacing could fill
    them. (The request is the pacer being told one is in flight.)"""
    server = await start_server(hub=EventsHub(queue_size=16))
    hub = server.hub
    assert hub is not None
    clients: list[RawClient] = []
    events = 300
    with trio.fail_after(DEADLINE):
        for _ in range(20):
            clients.append(await raw_connect(server.port, "/api/ws"))
        await hub.wait_subscriber_count(20)
        hub.pacer.request_started()
        waves_before = hub.pacer.waves
        for _ in range(events):
            hub.broadcast_agent_status("C1", "running")
            await trio.lowlevel.checkpoint()
        for client in clients:
            assert await read_seqs(client, events) == list(range(1, events + 1))
        waves = hub.pacer.waves - waves_before
        hub.pacer.request_finished()
        assert hub.statistics().slow_consumers_closed == 0
        assert 1 <= waves < events // 4
        for client in clients:
            await client.send(client_frame(0x8, b"\x03\xe8"))
            _, code, _ = await client.receive_until_close()
            assert code == 1000
            await client.aclose()


async def test_a_wave_waits_for_the_one_being_released(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seq = Seq()
    pacer = WritePacer(seq, floor=0.01, ceiling=0.5, ratio=4.0, chunk=1)
    pacer.request_started()
    seq.value = 1
    first_wave: list[float] = []
    second_wave: list[float] = []

    async def later_writer() -> None:
        await pacer.wait_turn(2)
        second_wave.append(trio.current_time())

    async with trio.open_nursery() as nursery:

        async def writer(index: int) -> None:
            await pacer.wait_turn(1)
            first_wave.append(trio.current_time())
            autojump_clock.jump(0.01)
            if index == 0:
                # Published while wave 1 is still being released: its writer leads wave 2.
                seq.value = 2
                nursery.start_soon(later_writer)

        for index in range(6):
            nursery.start_soon(writer, index)
    assert len(first_wave) == 6 and len(second_wave) == 1
    assert pacer.waves == 2
    # Wave 2 began only after wave 1's release was over, and then waited its gap.
    assert second_wave[0] >= max(first_wave) + 0.01
