"""A channel's runs are queued in ticket order on each instance, whatever the store's speed.

Several instances share a channel's turns through tickets in the store (docs/scale-out.md). If
an instance queued ticket 2 before ticket 1 (the request that took ticket 1 was slower to come
back from the store), the channel's worker would wait for ticket 2's turn while ticket 1 sat
behind it in the same queue: the channel deadlocked on every instance. Here the store's first
``take`` is held back until a second request has taken its ticket, deterministically.
No Docker: the runner ends each run at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.testing

from loop_server.agent import Orchestrator
from loop_server.agent._runner import AgentError
from loop_server.clock import SystemClock
from loop_server.domain import ChannelUpsert
from loop_server.services.messages import MessageService
from loop_server.store import Store
from tests.agent.conftest import Recorder

CHANNEL = "c-turns"


def _user_messages(recorder: Recorder) -> int:
    """User messages stored and announced so far (each is recorded before it is queued)."""
    return sum(
        1 for kind, _, data in recorder.events if kind == "message.created" and not data["is_bot"]
    )


class SlowFirstTake:
    """``ChannelTurns`` whose first ``take`` answers only once released; records the order in
    which tickets are waited for and released."""

    def __init__(self) -> None:
        self.issued = 0
        self.first_taken = trio.Event()
        self.release_first = trio.Event()
        self.waited: list[int] = []
        self.released: list[int] = []

    async def forget_earlier_life(self) -> int:
        return 0

    async def take(self, channel_id: str) -> int:
        self.issued += 1
        ticket = self.issued
        if ticket == 1:
            self.first_taken.set()
            await self.release_first.wait()
        return ticket

    async def wait(self, channel_id: str, ticket: int) -> None:
        self.waited.append(ticket)
        # Only the lowest ticket not yet released may run, as in the store.
        assert ticket == min(set(range(1, self.issued + 1)) - set(self.released)), (
            f"ticket {ticket} waited for before a lower one: a deadlock across instances"
        )
        await trio.lowlevel.checkpoint()

    async def release(self, ticket: int) -> None:
        self.released.append(ticket)
        await trio.lowlevel.checkpoint()


class EndsAtOnce:
    """An ``AgentRunner`` whose every run fails at once (no container)."""

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, request: Any, on_event: Any) -> Any:
        self.runs += 1
        await trio.lowlevel.checkpoint()
        raise AgentError("no agent here")


async def test_a_slow_first_ticket_is_still_queued_first(tmp_path: Path) -> None:
    clock = SystemClock()
    store = await Store.open(tmp_path / "loop.db")
    try:
        await store.channels.upsert(ChannelUpsert(channel_id=CHANNEL, name="turns"), clock.now())
        recorder = Recorder()
        turns = SlowFirstTake()
        runner = EndsAtOnce()
        orchestrator = Orchestrator(
            store,
            MessageService(store.messages, recorder, clock=clock),
            runner,  # type: ignore[arg-type]
            recorder,
            clock=clock,
            loop_dir=str(tmp_path),
            turns=turns,  # type: ignore[arg-type]
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(orchestrator.run)
            with trio.fail_after(10):
                nursery.start_soon(orchestrator.handle_incoming_message, CHANNEL, "u1", "first")
                await turns.first_taken.wait()
                nursery.start_soon(orchestrator.handle_incoming_message, CHANNEL, "u1", "second")
                # The second request gets as far as it can while the first's ticket is held:
                # its message stored (a worker thread's commit), then queueing.
                while _user_messages(recorder) < 2:
                    await recorder.changed.wait()
                await trio.testing.wait_all_tasks_blocked()
                turns.release_first.set()
                await trio.testing.wait_all_tasks_blocked()
                await orchestrator.wait_idle()
            nursery.cancel_scope.cancel()
    finally:
        await store.close()
    assert turns.issued == 2
    assert turns.waited == [1, 2]
    assert turns.released == [1, 2]
    assert runner.runs == 2
