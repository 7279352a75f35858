"""When the ``/api/ws`` writers flush: at once when nothing competes, in waves when requests do.

Every connection's writer task is woken by its memory channel when an event arrives, drains
what is queued and writes it. A wake-up costs far more than the event itself (a task switch, a
scheduler pass, a ``send`` syscall, against a ``send_nowait`` and a frame join per event), and
with N subscribers one event means N wake-ups, all in the next scheduler pass. On the user's
path (REST writes stored, then delivered) that pass holds up every request in flight, so the
next write's events arrive one by one too: 1.2–1.4 events per wake-up were measured, and the
wake-ups took the CPU the writes needed.

So while HTTP requests are being served (``request_started``/``request_finished``, counted by
the listener), writers take turns in *waves*. The first writer with new events becomes the
wave's *leader*; the others park behind it. The leader releases them 16 per scheduler pass,
so requests are served between chunks, and each writer drains everything queued since — the
events of several writes for one wake-up and one syscall. If events were published while the
wave was released, the next wave waits ``ratio`` (1) times the release's duration (between 2
ms and 10 ms): the writers then get at most half the time, and an event waits at most 10 ms
for its wave. History (docs/benchmarks.md, "Events on the user's path"): the ceiling was 0.1 s
until 2026-12-04, then 30 ms with ``ratio`` 4; with ``ratio`` 1 and 10 ms the user's-path p99
at 200 subscribers fell from 51 to 35 ms (the Node peer's: 26–29 ms) for 10–20% fewer
deliveries per second, still 1.5× the peer's.
If none were, the next event starts a wave at once. A writer that has just written and sees
events published since its wave began waits for the next wave directly (one wake-up per wave
instead of two); otherwise it waits on its channel.

When no request is being served (the hub's own publishers, an agent run streaming to a quiet
server) nothing competes for the CPU, and every event goes out as before: each writer woken by
its channel writes at once, in the same pass.

Nothing waits for a leader that is gone: a leader cancelled while it waits (its connection
ended) releases everyone parked before it goes. The hub calls ``hurry`` when the events
published since the last wave reach 32 or half the smallest queue, so pacing neither makes a
reader look slow (4008) nor holds up a publisher that waits for its events to arrive.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import trio

DEFAULT_FLOOR = 0.002  # s: the least gap between waves while events keep coming
DEFAULT_CEILING = 0.01  # s: the most an event waits for its wave (docs/benchmarks.md)
DEFAULT_RATIO = 1.0  # gap ÷ the last wave's release time: writers get ≤ 1/(1+ratio)
DEFAULT_CHUNK = 16  # writers released per scheduler pass


class WritePacer:
    """Decides when writers flush; one per hub. Call it from the Trio thread only."""

    def __init__(
        self,
        published_seq: Callable[[], int],
        *,
        floor: float = DEFAULT_FLOOR,
        ceiling: float = DEFAULT_CEILING,
        ratio: float = DEFAULT_RATIO,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        if not 0 <= floor <= ceiling:
            raise ValueError("need 0 <= floor <= ceiling")
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        self._published_seq = published_seq
        self._floor = floor
        self._ceiling = ceiling
        self._ratio = ratio
        self._chunk = chunk
        #: Events up to this seq belong to the wave under way: their writers need not wait.
        self.wave_seq = -1
        self._next_wave_at = -math.inf
        self._releasing = False
        self._requests = 0
        self._hurried = False
        self._lot = trio.lowlevel.ParkingLot()
        self._leader_scope: trio.CancelScope | None = None
        self.waves = 0

    def request_started(self) -> None:
        """An HTTP request is being served: until it ends, waves go through a leader (in
        chunks, and spaced out when events keep coming) so that the request gets its turns."""
        self._requests += 1

    def request_finished(self) -> None:
        self._requests -= 1

    @property
    def dense(self) -> bool:
        """True while a wave is being waited for or released, or the next is due later."""
        return (
            self._leader_scope is not None
            or self._releasing
            or trio.current_time() < self._next_wave_at
        )

    @property
    def behind(self) -> bool:
        """True when events were published after the wave under way began and the next wave
        is not free to start yet: a writer that just wrote will have more at the next wave, so
        it waits for that wave directly instead of being woken by its channel first and then
        waiting (one wake-up, not two). When nothing came since, it waits on its channel."""
        return self._published_seq() > self.wave_seq and self.dense

    def hurry(self) -> None:
        """Start the next wave as soon as the one being released is out (queues are filling
        up)."""
        self._hurried = True
        self._next_wave_at = -math.inf
        if self._leader_scope is not None and not self._releasing:
            self._leader_scope.cancel()

    async def wait_turn(self, newest_seq: int) -> None:
        """Return when a writer holding events up to ``newest_seq`` may write them: at once
        when they belong to the wave under way, else with the next wave."""
        if newest_seq <= self.wave_seq:
            return
        if not self._requests and not self.dense:
            # Nothing else is being served: a wave starts now, with everything published so
            # far, and the writers woken by it go in the same scheduler pass.
            self._start_wave()
            return
        await self.next_wave()

    async def next_wave(self) -> None:
        """Wait for the next wave: lead it if nobody does yet, else be released by its
        leader."""
        if self._leader_scope is not None:
            await self._lot.park()
        else:
            await self._lead()

    async def _lead(self) -> None:
        # This writer waits for the wave on behalf of all, then releases them. After a quiet
        # spell the wave is due now: the deadline passes at the next scheduler pass, once the
        # other writers woken by the same event have parked behind this one.
        # While the wave before is still being released, this one waits for it to end: its
        # leader then sets when this one is due (``_plan_next``).
        due = math.inf if self._releasing else max(self._next_wave_at, trio.current_time())
        scope = self._leader_scope = trio.CancelScope(deadline=due)
        try:
            with scope:
                await trio.sleep_forever()
        except BaseException:
            # Cancelled from outside (the leader's connection ended): this task cannot wait
            # any more, so everyone parked goes now.
            self._leader_scope = None
            parked = self._swap_lot()
            self._start_wave()
            parked.unpark_all()
            raise
        self._leader_scope = None
        parked = self._swap_lot()
        started = self._start_wave()
        self._releasing = True
        try:
            while parked:
                parked.unpark(count=self._chunk)
                await trio.lowlevel.checkpoint()
        finally:
            parked.unpark_all()
            self._releasing = False
            self._plan_next(started)

    def _plan_next(self, started: float) -> None:
        # Events published while this wave was released mean other work competes with the
        # writers: the next wave waits ``ratio`` times this one's duration. None: the next
        # event goes at once.
        now = trio.current_time()
        if self._published_seq() > self.wave_seq and not self._hurried:
            gap = min(self._ceiling, max(self._floor, self._ratio * (now - started)))
            self._next_wave_at = started + gap
        else:
            self._next_wave_at = -math.inf
        if self._leader_scope is not None:
            # The next wave's leader has been waiting for this release to end.
            self._leader_scope.deadline = max(self._next_wave_at, now)

    def _swap_lot(self) -> trio.lowlevel.ParkingLot:
        # Writers arriving from now on wait for the wave after this one.
        parked, self._lot = self._lot, trio.lowlevel.ParkingLot()
        return parked

    def _start_wave(self) -> float:
        now = trio.current_time()
        self.wave_seq = self._published_seq()
        self.waves += 1
        self._hurried = False
        return now
