"""Channel turns: one run at a time per channel, first come first served, across instances.

Two ``ChannelTurns`` (two instances) on one real SQLite store; the same SQL runs on PostgreSQL
in a deployment (tests/scaleout).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from loop_server.services.turns import ChannelTurns
from loop_server.store import Store, open_store
from tests.conftest import FixedClock

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DEADLINE = 10


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The same store on each engine: SQLite, and a real PostgreSQL (where the claim takes a
    row lock and several connections really run at once)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    opened = await open_store(database_url=url, path=tmp_path / "loop.db")
    yield opened
    await opened.close()


def instance(store: Store, name: str, clock: FixedClock, lease: float = 60.0) -> ChannelTurns:
    return ChannelTurns(store.turns, instance_id=name, clock=clock, lease_seconds=lease)


async def test_runs_of_one_channel_take_turns_in_the_order_asked_across_instances(
    store: Store,
) -> None:
    clock = FixedClock(T0)
    a, b = instance(store, "a", clock), instance(store, "b", clock)
    for name in "ab":
        await store.runs.heartbeat(name, T0)
    order: list[str] = []
    inside = 0

    async def run(turns: ChannelTurns, channel: str, label: str, ticket: int) -> None:
        nonlocal inside
        await turns.wait(channel, ticket)
        inside += 1
        assert inside == 1, "two runs of one channel at once"
        order.append(label)
        await trio.sleep(0.05)
        inside -= 1
        await turns.release(ticket)

    with trio.fail_after(DEADLINE):
        tickets = [
            ("a1", a, await a.take("c")),
            ("b1", b, await b.take("c")),
            ("a2", a, await a.take("c")),
            ("b2", b, await b.take("c")),
        ]
        async with trio.open_nursery() as nursery:
            for label, turns, ticket in reversed(tickets):  # started in the wrong order
                nursery.start_soon(run, turns, "c", label, ticket)
    assert order == ["a1", "b1", "a2", "b2"]
    assert await store.turns.first("c") is None  # every ticket released


async def test_other_channels_do_not_wait(store: Store) -> None:
    clock = FixedClock(T0)
    a, b = instance(store, "a", clock), instance(store, "b", clock)
    await store.runs.heartbeat("a", T0)
    await a.take("busy")  # never released
    ticket = await b.take("free")
    with trio.fail_after(DEADLINE):
        await b.wait("free", ticket)


async def test_the_tickets_of_a_stopped_instance_are_dropped_after_the_lease(
    store: Store,
) -> None:
    clock = FixedClock(T0)
    await store.runs.heartbeat("dead", T0)
    await instance(store, "dead", clock).take("c")  # then SIGKILL: never released
    clock.current = T0 + timedelta(minutes=5)  # its heartbeat is older than the lease now
    b = instance(store, "b", clock, lease=0.2)
    await store.runs.heartbeat("b", clock.current)
    ticket = await b.take("c")
    with trio.fail_after(DEADLINE):
        await b.wait("c", ticket)
    assert await store.turns.first("c") == ticket


async def test_a_live_instance_keeps_its_turn(store: Store) -> None:
    clock = FixedClock(T0)
    a, b = instance(store, "a", clock), instance(store, "b", clock, lease=0.1)
    await store.runs.heartbeat("a", T0)
    held = await a.take("c")
    ticket = await b.take("c")
    with trio.move_on_after(0.6) as waited:
        await b.wait("c", ticket)
    assert waited.cancelled_caught, "b ran while a held the channel"
    await a.release(held)
    with trio.fail_after(DEADLINE):
        await b.wait("c", ticket)


async def test_start_up_forgets_this_instances_tickets_from_an_earlier_life(
    store: Store,
) -> None:
    clock = FixedClock(T0)
    await store.runs.heartbeat("a", T0)
    earlier = instance(store, "a", clock)
    await earlier.take("c")
    assert await instance(store, "a", clock).forget_earlier_life() == 1
    assert await store.turns.first("c") is None
