"""Which channels have a running container, kept in memory from Docker's event stream.

Why: the channel listing shows ``container_running`` for every channel, and asking Docker for
a container listing on every ``GET /api/channels`` made that route as slow as Docker. Here one
long-lived task follows Docker's event stream (container events of our label only) and keeps a
map container id → channel id of the running ones; the listing reads that map.

How it stays right:

* Reconciled on start and after every loss of the stream: subscribe first, then list, then
  apply events in order. Events are idempotent state changes ("X runs", "X stopped"), so events
  that raced the listing leave the same final state as if they came after it.
* Read-your-writes for this server's own Docker calls (a terminal's shell container started
  or removed, an agent run's container): every finished engine call bumps the engine's
  ``calls_finished``; when it moved since the last listing, the next query lists once again
  instead of trusting an event that may still be on its way.
* Changes made by anyone else show up as soon as Docker delivers their event (milliseconds).
* While the stream is down (engine restarting, a request refused), each query lists, as
  before. With no engine at all, a query shows no container running, and the engine's connect
  is retried at most once a second (``DockerEngine``), not by every query.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import trio

from loop_server.containers._engine import DockerEngine, EngineError
from loop_server.containers._labels import CHANNEL_LABEL

log = logging.getLogger(__name__)

# Actions after which a container runs / no longer runs (Docker's container event names).
RUNNING_ACTIONS = frozenset({"start", "unpause", "restart"})
STOPPED_ACTIONS = frozenset({"die", "stop", "pause", "destroy"})
RETRY_MIN_SEC = 0.5
RETRY_MAX_SEC = 30.0


@dataclass(frozen=True, slots=True)
class RunningStatistics:
    live: bool  # following the event stream now
    running_containers: int
    listings: int  # container listings asked of Docker (reconciles and fallbacks)
    events: int  # container events applied
    reconnects: int  # times the event stream was (re)opened


class RunningChannels:
    """Satisfies ``RunningChannelLister``; run ``run`` in a nursery (``await nursery.start``)."""

    def __init__(self, engine: DockerEngine) -> None:
        self._engine = engine
        self._running: dict[str, str] = {}  # container id → channel id
        self._live = False
        self._synced_calls = -1  # engine.calls_finished as of the last listing
        self._listings = 0
        self._events = 0
        self._reconnects = 0
        self._changed = trio.Event()
        self._listing = trio.Lock()  # concurrent stale queries share one listing
        # The event reader blocks in a thread for as long as the stream is quiet: give it its
        # own token so it never holds one of the engine's.
        self._reader_limiter = trio.CapacityLimiter(1)

    async def running_channel_ids(self) -> set[str]:
        if self._stale():
            async with self._listing:
                if self._stale():  # unless a query ahead of us just listed
                    try:
                        await self._reconcile()
                    except EngineError:
                        # No engine: no container of ours can be seen running. The event
                        # follower logs the outage once; a warning per listing would only
                        # repeat it.
                        return set()
        return set(self._running.values())

    def known_running(self) -> set[str]:
        """The channels memory says are running now, without asking Docker."""
        return set(self._running.values())

    def _stale(self) -> bool:
        return not self._live or self._engine.calls_finished != self._synced_calls

    def statistics(self) -> RunningStatistics:
        return RunningStatistics(
            live=self._live,
            running_containers=len(self._running),
            listings=self._listings,
            events=self._events,
            reconnects=self._reconnects,
        )

    async def wait_changed(self) -> None:
        """Return after the next change of state (an event applied, a listing, live or not)."""
        await self._changed.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        delay = RETRY_MIN_SEC
        while True:
            try:
                await self._follow()
                delay = RETRY_MIN_SEC  # a clean end of stream (engine restarted): retry soon
            except Exception as err:
                if delay == RETRY_MIN_SEC:  # once per outage, not at every retry
                    log.warning("docker event stream lost, listing per request: %s", err)
                delay = min(delay * 2, RETRY_MAX_SEC)
            await trio.sleep(delay)

    async def _follow(self) -> None:
        client = await self._engine.client()
        filters = {"type": "container", "label": CHANNEL_LABEL}
        stream = await self._engine.call(client.events, decode=True, filters=filters)
        self._reconnects += 1
        try:
            async with self._listing:
                await self._reconcile()
            self._set_live(True)
            events: Iterator[dict[str, Any]] = iter(stream)
            while True:
                # Cancellable: the thread stays blocked until stream.close() below ends it.
                event = await trio.to_thread.run_sync(
                    next, events, None, abandon_on_cancel=True, limiter=self._reader_limiter
                )
                if event is None:
                    return
                self._apply(event)
        finally:
            self._set_live(False)
            stream.close()

    async def _reconcile(self) -> None:
        before = self._engine.calls_finished
        client = await self._engine.client()
        # The low-level listing: the high-level one inspects every container once more.
        found = await self._engine.call(
            client.api.containers, filters={"label": CHANNEL_LABEL, "status": "running"}
        )
        self._listings += 1
        # Trust the listing for every call finished before it began; if any other call ended
        # while it ran, we cannot tell which side of it that call fell on: list again next time.
        if self._engine.calls_finished == before + 1:
            self._synced_calls = self._engine.calls_finished
        self._running = {
            str(c["Id"]): c["Labels"].get(CHANNEL_LABEL, "")
            for c in found
            if (c.get("Labels") or {}).get(CHANNEL_LABEL)
        }
        self._notify()

    def _apply(self, event: dict[str, Any]) -> None:
        if event.get("Type") != "container":
            return
        actor = event.get("Actor") or {}
        container_id = str(actor.get("ID") or event.get("id") or "")
        channel_id = (actor.get("Attributes") or {}).get(CHANNEL_LABEL, "")
        action = str(event.get("Action") or event.get("status") or "")
        if not container_id or not channel_id:
            return
        if action in RUNNING_ACTIONS:
            self._running[container_id] = channel_id
        elif action in STOPPED_ACTIONS:
            self._running.pop(container_id, None)
        else:
            return  # create, exec_*, attach, …: no change of running state
        self._events += 1
        self._notify()

    def _set_live(self, live: bool) -> None:
        self._live = live
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()
