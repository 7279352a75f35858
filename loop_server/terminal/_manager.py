"""Terminal sessions: docker exec with a TTY, shared by any number of viewers (SPEC §6, A.4).

``SessionManager`` satisfies ``protocols.TerminalManager``. It owns a nursery (``run``) in which
each session's output pump runs as a plain Trio task reading the exec's socket; sessions outlive
the WebSocket connections that watch them. A reaper ends sessions nobody has watched for
``idle_timeout`` seconds, so abandoned shells do not pile up; shutting the manager down kills
every session's process (nobody could re-attach to it after a restart).
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from loop_server.streams import receive_eagerly, write_nowait
from loop_server.terminal._backend import TtyLauncher
from loop_server.terminal._session import ClientNotFound, Session
from loop_server.terminal._viewer import Viewer

log = logging.getLogger("loop_server.terminal")

DEFAULT_COMMAND = ("/bin/sh",)
#: A read at least this big means output is flooding (see ``coalesce_delay``).
BULK_READ = 2048


class TerminalError(Exception):
    """A terminal operation failed; the text is what the client sees (``error`` message)."""


@dataclass(frozen=True, slots=True)
class TerminalStatistics:
    sessions: int
    running: int  # sessions whose process has not ended
    viewers: int
    queued_bytes: int  # over every viewer's queue
    dropped_bytes: int  # lost by viewers that fell behind (live viewers only)
    bytes_out: int  # output read from live sessions' processes
    reaped: int  # sessions ended by the idle timeout since start


class SessionManager:
    def __init__(
        self,
        launcher: TtyLauncher,
        *,
        idle_timeout: float = 30 * 60,
        history_bytes: int = 1 << 20,
        viewer_queue_bytes: int = 1 << 20,
        viewer_queue_chunks: int = 1024,
        read_size: int = 1 << 16,
        input_timeout: float = 10.0,
        kill_timeout: float = 10.0,
        coalesce_delay: float = 0.001,
        instance: str = "",
    ) -> None:
        """``idle_timeout``: seconds a session may go without any viewer (``math.inf`` or 0:
        never reaped). ``read_size``: bytes per read of the exec socket (upstream reads 4 KiB;
        larger reads cost fewer wake-ups when output floods). ``input_timeout``: how long one
        input write may wait for a process that does not read its terminal.
        ``coalesce_delay``: after a bulk read (a pty hands over about 4 KiB at a time when
        output floods), how long to let output pile up before the next read; small reads —
        echo, prompts — are passed on at once whatever this is (0: never wait).
        ``instance``: this server's name among several (docs/scale-out.md). A session lives in
        the process that started it, so its id then carries that name (``<hex>@<instance>``)
        and another instance asked for it can say where it is instead of "not found"."""
        self._launcher = launcher
        self._idle_timeout = idle_timeout if idle_timeout > 0 else math.inf
        self._history_bytes = history_bytes
        self._viewer_queue_bytes = viewer_queue_bytes
        self._viewer_queue_chunks = viewer_queue_chunks
        self._read_size = read_size
        self._input_timeout = input_timeout
        self._kill_timeout = kill_timeout
        self._coalesce_delay = coalesce_delay
        self._instance = instance
        self._sessions: dict[str, Session] = {}
        # Unregistered sessions whose process is still being killed.
        self._disposing: dict[str, Session] = {}
        self._nursery: trio.Nursery | None = None
        # Wakes the reaper when a session loses its last viewer.
        self._idle_lot = trio.lowlevel.ParkingLot()
        # Wakes ``wait_session_gone`` callers when a session has been disposed of.
        self._removed_lot = trio.lowlevel.ParkingLot()
        self._reaped = 0

    # -- lifetime -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; then kill every session's process (within
        ``kill_timeout``)."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._reaper)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            sessions = [self._unregister(session_id) for session_id in list(self._sessions)]
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self._kill_timeout
                async with trio.open_nursery() as disposers:
                    for session in sessions:
                        disposers.start_soon(self._dispose, session, "server shutdown")

    def _running_nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise TerminalError("terminal manager is not running")
        return self._nursery

    # -- the TerminalManager protocol -----------------------------------------------------

    async def create_session(
        self, container_id: str, cmd: Sequence[str]
    ) -> tuple[str, Viewer, bytes]:
        """Start ``cmd`` (default ``/bin/sh``) on a TTY in the container; the caller is its
        first viewer. Returns the session id, the viewer and the history (empty)."""
        self._running_nursery()
        argv = list(cmd) or list(DEFAULT_COMMAND)
        # Once Docker has started the process, it must end up registered (and so reaped or
        # stopped some day), even if the caller is cancelled meanwhile.
        with trio.CancelScope(shield=True):
            try:
                process = await self._launcher.start(container_id, argv)
            except Exception as err:
                raise TerminalError(str(err) or type(err).__name__) from err
        nursery = self._nursery
        if nursery is None:  # shut down while Docker was starting it
            await trio.aclose_forcefully(process.stream)
            raise TerminalError("terminal manager is not running")
        session_id = self._new_id()
        session = Session(session_id, container_id, process, self._history_bytes)
        viewer = self._new_viewer(session_id)
        history = session.attach(viewer)
        self._sessions[session_id] = session
        nursery.start_soon(self._pump, session, name=f"terminal pump {session_id}")
        log.info(
            "terminal session created session=%s container=%s cmd=%s",
            session_id,
            container_id[:12],
            argv[0],
        )
        return session_id, viewer, history

    async def attach_session(self, session_id: str) -> tuple[Viewer, bytes]:
        """A new viewer of the session, and the history it starts from (SPEC §6: any number
        of viewers; the history up to now, then every later byte once)."""
        await trio.lowlevel.checkpoint()
        session = self._get(session_id)
        viewer = self._new_viewer(session_id)
        return viewer, session.attach(viewer)

    async def detach(self, session_id: str, viewer: object) -> None:
        """Remove the viewer (its stream ends); the session keeps running."""
        await trio.lowlevel.checkpoint()
        session = self._get(session_id)
        try:
            session.detach(viewer, trio.current_time())
        except ClientNotFound as err:
            raise TerminalError(str(err)) from None
        if not session.viewers:
            self._idle_lot.unpark_all()

    async def send_input(self, session_id: str, data: bytes) -> None:
        session = self._get(session_id)
        await trio.lowlevel.checkpoint_if_cancelled()
        if not data:
            return
        stream = session.process.stream
        lock = session.input_lock
        if not lock.locked():
            # The common case (a keystroke): one non-blocking write, no timer, no switch.
            lock.acquire_nowait()
            try:
                written = write_nowait(stream, data)
            finally:
                lock.release()
            if written == len(data):
                return
            data = data[max(written, 0) :]
        with trio.move_on_after(self._input_timeout) as timer:
            if lock.locked():
                await lock.acquire()
            else:
                lock.acquire_nowait()  # free: no task switch (keystrokes are latency-bound)
            try:
                written = write_nowait(stream, data)
                if written < len(data):
                    await stream.send_all(memoryview(data)[max(written, 0) :])
            except trio.ClosedResourceError:
                raise TerminalError("writing input: session has ended") from None
            except trio.BrokenResourceError as err:
                cause = err.__cause__ or err
                raise TerminalError(f"writing input: {cause}") from None
            finally:
                lock.release()
        if timer.cancelled_caught:
            raise TerminalError(f"writing input: timed out after {self._input_timeout:g}s")

    async def resize(self, session_id: str, rows: int, cols: int) -> None:
        session = self._get(session_id)
        try:
            await session.process.resize(rows, cols)
        except Exception as err:
            raise TerminalError(f"resizing exec: {err}") from err

    async def stop_session(self, session_id: str) -> str:
        """End the session: close its TTY, kill its process, end every viewer's stream.
        Returns the container id."""
        if session_id not in self._sessions:
            await trio.lowlevel.checkpoint()
            raise TerminalError(self._not_here(session_id))
        session = self._unregister(session_id)
        # Finish even if the caller goes away: the session is already unregistered.
        with trio.CancelScope(shield=True):
            await self._dispose(session, "stopped")
        return session.container_id

    # -- introspection --------------------------------------------------------------------

    def has_session(self, session_id: str) -> bool:
        return session_id in self._sessions

    async def wait_session_gone(self, session_id: str) -> None:
        """Return once the session is gone (stopped, reaped, shut down) and its process has
        been killed."""
        while session_id in self._sessions or session_id in self._disposing:
            await self._removed_lot.park()
        await trio.lowlevel.checkpoint()

    def statistics(self) -> TerminalStatistics:
        sessions = self._sessions.values()
        viewers = [viewer for session in sessions for viewer in session.viewers]
        return TerminalStatistics(
            sessions=len(self._sessions),
            running=sum(1 for session in sessions if not session.ended.is_set()),
            viewers=len(viewers),
            queued_bytes=sum(viewer.queued_bytes for viewer in viewers),
            dropped_bytes=sum(viewer.dropped_bytes for viewer in viewers),
            bytes_out=sum(session.bytes_out for session in sessions),
            reaped=self._reaped,
        )

    # -- inside ---------------------------------------------------------------------------

    def _get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise TerminalError(self._not_here(session_id))
        return session

    def _not_here(self, session_id: str) -> str:
        _, at, owner = session_id.rpartition("@")
        if at and owner and owner != self._instance:
            return (
                f'session {session_id} is served by instance "{owner}":'
                " open the terminal through that instance"
            )
        return "session not found"

    def _new_id(self) -> str:
        suffix = f"@{self._instance}" if self._instance else ""
        while True:
            session_id = secrets.token_hex(4) + suffix
            if session_id not in self._sessions:
                return session_id

    def _new_viewer(self, session_id: str) -> Viewer:
        return Viewer(
            session_id, max_bytes=self._viewer_queue_bytes, max_chunks=self._viewer_queue_chunks
        )

    async def _pump(self, session: Session) -> None:
        """Copy the process's output to the history and to every viewer, as fast as it comes;
        nothing here ever waits for a viewer."""
        stream = session.process.stream
        read_size = self._read_size
        coalesce_delay = self._coalesce_delay
        try:
            if session.process.initial_output:
                session.deliver(session.process.initial_output)
            while data := await receive_eagerly(stream, read_size):
                session.deliver(data)
                if len(data) >= BULK_READ and coalesce_delay > 0:
                    # Output is flooding: let more pile up, so the next read (and the frames
                    # and wake-ups after it, here and in the client) carries more of it.
                    await trio.sleep(coalesce_delay)
                else:
                    await trio.lowlevel.checkpoint()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # closed by stop/reap/shutdown, or the connection to Docker broke
        finally:
            session.finish()
            await trio.aclose_forcefully(stream)
        log.info("terminal session ended session=%s", session.id)

    def _unregister(self, session_id: str) -> Session:
        """Take a session out of the registry; it counts as gone once ``_dispose`` is done."""
        session = self._sessions.pop(session_id)
        self._disposing[session_id] = session
        return session

    async def _dispose(self, session: Session, reason: str) -> None:
        """Close the TTY and kill the process of an unregistered session."""
        try:
            session.finish()
            await trio.aclose_forcefully(session.process.stream)
            with trio.move_on_after(self._kill_timeout):
                try:
                    gone = await session.process.kill()
                except Exception as err:
                    log.warning("terminal: kill failed session=%s: %s", session.id, err)
                else:
                    if not gone:
                        log.warning(
                            "terminal: could not verify the process of session=%s; left running",
                            session.id,
                        )
        finally:
            del self._disposing[session.id]
            self._removed_lot.unpark_all()
        log.info("terminal session removed session=%s reason=%s", session.id, reason)

    async def _reaper(self) -> None:
        while True:
            now = trio.current_time()
            next_due = math.inf
            for session in list(self._sessions.values()):
                if session.idle_since is None:
                    continue
                due = session.idle_since + self._idle_timeout
                if due > now:
                    next_due = min(next_due, due)
                    continue
                self._unregister(session.id)
                self._reaped += 1
                # Killing takes Docker calls: do not hold up the next reaping for it.
                self._running_nursery().start_soon(self._dispose, session, "idle")
            with trio.move_on_at(next_due):
                await self._idle_lot.park()
