"""One agent run at a time per channel across instances (docs/scale-out.md).

Within one process the orchestrator's per-channel queue already runs a channel's jobs one by
one, in order. Several instances on one database each have such a queue, so a channel's run is
also given a ticket in the store when it is queued (``channel_turns``), and starts only when its
ticket is the channel's lowest: first asked, first run, whichever instance was asked. A ticket
is released when its run ends; the tickets of an instance that died are dropped once its
scheduler heartbeat is older than the lease, so its channels do not stay blocked.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import trio

from loop_server.clock import Clock
from loop_server.store import ChannelTurnRepository

log = logging.getLogger(__name__)

#: How often a waiting run asks whether it is its turn (seconds), at first and at most.
FIRST_POLL = 0.05
LONGEST_POLL = 0.5


class ChannelTurns:
    def __init__(
        self,
        turns: ChannelTurnRepository,
        *,
        instance_id: str,
        clock: Clock,
        lease_seconds: float,
    ) -> None:
        self._turns = turns
        self._instance_id = instance_id
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)

    async def forget_earlier_life(self) -> int:
        """At start-up: this instance's tickets from before a crash hold nothing up now."""
        return await self._turns.drop_gone(self._clock.now() - self._lease, own=self._instance_id)

    async def take(self, channel_id: str) -> int:
        return await self._turns.take(channel_id, self._instance_id, self._clock.now())

    async def wait(self, channel_id: str, ticket: int) -> None:
        """Return when it is ``ticket``'s turn in ``channel_id``."""
        delay = FIRST_POLL
        waited = 0.0
        while (first := await self._turns.first(channel_id)) != ticket:
            if first is None or first > ticket:
                # Ours is gone (dropped as stale after a long outage): take the turn anyway
                # rather than never running; the store said nobody is ahead of us.
                log.warning("channel turns: ticket %d of %s was dropped", ticket, channel_id)
                return
            await trio.sleep(delay)
            waited += delay
            delay = min(delay * 2, LONGEST_POLL)
            if waited >= self._lease.total_seconds():
                waited = 0.0
                dropped = await self._turns.drop_gone(self._clock.now() - self._lease)
                if dropped:
                    log.warning("channel turns: dropped %d ticket(s) of stopped instances", dropped)

    async def release(self, ticket: int) -> None:
        """Shielded: a run that is being cancelled must still hand the channel on."""
        with trio.CancelScope(shield=True):
            try:
                await self._turns.release(ticket)
            except Exception:
                log.exception("channel turns: releasing ticket %d failed", ticket)
