"""One terminal session's state: its process, history and viewers. No I/O, no awaits.

Every method runs to completion without yielding, so "take the history snapshot and join the
live output" is atomic: an attaching viewer gets each byte exactly once, either in the snapshot
or in its queue.
"""

from __future__ import annotations

import trio

from loop_server.terminal._backend import TtyProcess
from loop_server.terminal._ring import RingBuffer
from loop_server.terminal._viewer import Viewer


class ClientNotFound(LookupError):
    pass


class Session:
    def __init__(
        self, session_id: str, container_id: str, process: TtyProcess, history_bytes: int
    ) -> None:
        self.id = session_id
        self.container_id = container_id
        self.process = process
        self.history = RingBuffer(history_bytes)
        # A dict, not a set: delivery in attach order, deterministic in tests.
        self.viewers: dict[Viewer, None] = {}
        #: Set when the output has ended (the process exited, or the session was stopped).
        self.ended = trio.Event()
        #: When the last viewer left (``trio.current_time()``); None while someone watches.
        self.idle_since: float | None = None
        #: Writers of input take turns: a stream allows one ``send_all`` at a time.
        self.input_lock = trio.Lock()
        self.bytes_out = 0

    def deliver(self, chunk: bytes) -> None:
        self.bytes_out += len(chunk)
        self.history.write(chunk)
        for viewer in self.viewers:
            viewer.push(chunk)

    def attach(self, viewer: Viewer) -> bytes:
        """Add ``viewer``; returns the history it has not got in its queue."""
        self.viewers[viewer] = None
        self.idle_since = None
        if self.ended.is_set():
            viewer.close()  # the history is all there will be
        return self.history.snapshot()

    def detach(self, viewer: object, now: float) -> None:
        """Remove ``viewer`` and drop what it had not read yet (its client is leaving)."""
        if not isinstance(viewer, Viewer) or viewer not in self.viewers:
            raise ClientNotFound("client not found")
        del self.viewers[viewer]
        viewer.close(discard=True)
        if not self.viewers:
            self.idle_since = now

    def finish(self) -> None:
        """The output has ended: viewers get what is queued, then the end of their stream.
        They stay attached (their clients may still read the history) until they detach."""
        self.ended.set()
        for viewer in self.viewers:
            viewer.close()
