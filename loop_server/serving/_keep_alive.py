"""hypercorn's keep-alive timer for one connection, without starting a task per request.

hypercorn's ``TCPServer`` closes a connection that stays idle (no request in flight) for
``keep_alive_timeout`` seconds, or at once when the server is terminating. It does that with a
``TrioSingleTask``: every request stops the timer task, and every answer starts a new one
(``nursery.start``, a lock, a cancel scope), which cost ~45 µs of a ~375 µs request on 2 CPUs
(py-spy, ``GET /api/health``, docs/benchmarks.md). This timer keeps one watcher task per
connection and only moves its deadline: stopping and restarting it are two assignments.
It is ``TCPServer.idle_task`` for our connections (``_handover.HandoverServer``) and behaves
the same: idle for the timeout, or idle while terminating, closes the connection; a request in
flight is never cut by it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio


class _Terminated(Protocol):
    """hypercorn's ``WorkerContext.terminated`` event."""

    def is_set(self) -> bool: ...

    async def wait(self) -> None: ...


class KeepAliveTimer:
    """The ``SingleTask`` interface as ``TCPServer`` uses it: ``restart()`` when the
    connection turns idle, ``stop()`` when a request arrives."""

    def __init__(
        self, timeout: float, terminated: _Terminated, expire: Callable[[], Awaitable[None]]
    ) -> None:
        self._timeout = timeout
        self._terminated = terminated
        self._expire = expire  # closes the connection
        self._idle = False
        self._deadline = math.inf
        self._waiting: trio.CancelScope | None = None  # the watcher's current wait
        self._watcher: trio.CancelScope | None = None

    async def restart(self, task_group: Any, action: Any) -> None:
        # ``action`` is hypercorn's own timer body; the watcher does its work instead.
        self._idle = True
        now = trio.current_time()
        self._set_deadline(-math.inf if self._terminated.is_set() else now + self._timeout)
        if self._watcher is None:
            self._watcher = await task_group._nursery.start(self._watch)

    async def stop(self) -> None:
        self._idle = False
        self._set_deadline(math.inf)

    def close(self) -> None:
        """End the watcher (the connection is done: nothing left to time out)."""
        if self._watcher is not None:
            self._watcher.cancel()

    def _set_deadline(self, deadline: float) -> None:
        self._deadline = deadline
        if self._waiting is not None:
            self._waiting.deadline = deadline  # no wake-up unless it is due

    async def _watch(self, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as watcher:
            task_status.started(watcher)
            while True:
                with trio.CancelScope(deadline=self._deadline) as waiting:
                    self._waiting = waiting
                    if self._terminated.is_set():
                        # Terminating while a request runs: wait for restart(), which makes
                        # the deadline due at once.
                        await trio.sleep_forever()
                    else:
                        await self._terminated.wait()
                self._waiting = None
                due = self._terminated.is_set() or trio.current_time() >= self._deadline
                if self._idle and due:
                    break
            with trio.CancelScope(shield=True):
                await self._expire()
