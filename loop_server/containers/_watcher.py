"""``container.status_changed`` from Docker's own event stream.

Every container of a channel (agent runs and terminal shells alike) carries the channel label,
so one subscription to the engine's events sees each of them start, stop and go, however it
was made or removed (by a run ending, a terminal's ``stop``, shutdown, or someone's
``docker rm``). Watching the engine rather than hooking each place that creates or removes a
container means nothing can be missed and no code path has to remember to publish.

Docker's actions map to upstream's statuses: ``start`` → ``running``, ``die`` → ``stopped``,
``destroy`` → ``removed``. Without an engine the watcher retries quietly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

import trio

from loop_server.containers._engine import DockerEngine
from loop_server.containers._labels import APP_LABEL, APP_VALUE, CHANNEL_LABEL, ROLE_LABEL
from loop_server.protocols import GlobalEventBroadcaster

log = logging.getLogger(__name__)

STATUSES = {"start": "running", "die": "stopped", "destroy": "removed"}
RETRY_DELAY = 5.0


def status_change(event: Mapping[str, Any]) -> tuple[str, str, str, str, str] | None:
    """``(container_id, channel_id, type, status, name)`` for one Docker event of one of our
    containers, or None for anything else."""
    if event.get("Type") != "container":
        return None
    status = STATUSES.get(str(event.get("Action", "")))
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    channel_id = attributes.get(CHANNEL_LABEL)
    if status is None or not channel_id or attributes.get(APP_LABEL) != APP_VALUE:
        return None
    kind = attributes.get(ROLE_LABEL) or "agent"
    return str(actor.get("ID", "")), str(channel_id), kind, status, str(attributes.get("name", ""))


class ContainerWatcher:
    def __init__(
        self,
        engine: DockerEngine,
        events: GlobalEventBroadcaster,
        *,
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self._engine = engine
        self._events = events
        self._retry_delay = retry_delay
        # The event stream blocks a thread for as long as it is open: never in the engine's
        # limiter, whose threads the SDK calls share.
        self._limiter = trio.CapacityLimiter(1)
        self._watching = trio.Event()

    async def wait_watching(self) -> None:
        """Return once the engine's event stream is open (changes from then on are seen)."""
        await self._watching.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Publish status changes until cancelled; reconnect after the engine goes away."""
        task_status.started()
        failures = 0
        while True:
            try:
                await self._watch()
                failures = 0
            except Exception as err:
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "container events unavailable, retrying: %s", err)
            await trio.sleep(self._retry_delay)

    async def _watch(self) -> None:
        client = await self._engine.client()
        filters = {"type": "container", "label": [f"{APP_LABEL}={APP_VALUE}", CHANNEL_LABEL]}
        # Not ``engine.call``: that counts as a call that may have changed containers, after
        # which ``RunningChannels`` lists them again; opening an event stream changes nothing.
        stream = await trio.to_thread.run_sync(
            partial(client.events, decode=True, filters=filters), limiter=self._limiter
        )
        self._watching.set()
        try:
            events: Iterator[Mapping[str, Any]] = iter(stream)
            while True:
                # Abandoned on cancellation; closing the stream below ends the thread's read.
                event = await trio.to_thread.run_sync(
                    next, events, None, limiter=self._limiter, abandon_on_cancel=True
                )
                if event is None:
                    return  # the engine closed the stream (restart): reconnect
                change = status_change(event)
                if change is not None:
                    self._events.broadcast_container_status_changed(*change)
        finally:
            self._watching = trio.Event()
            stream.close()
