"""One ``/api/ws/terminal`` connection above the WebSocket layer (SPEC §5.2–5.4).

``TerminalConnection`` acts on each client message in turn and keeps the connection's current
session. Whatever carries the frames (the listener's own RFC 6455 code, or the ASGI fallback)
gives it a ``TerminalSink`` to write through and a nursery for the streaming task that forwards
the current session's output as binary frames.

Ordering is deterministic where upstream's goroutines race: a ``create``/``attach`` that
replaces the current session waits for the old streaming task to send its ``closed`` before
answering ``created``/``attached``; ``stop`` answers ``closed`` (from the streaming task), then
``stopped`` once the container is removed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from loop_server.domain import Channel
from loop_server.protocols import (
    ContainerFinder,
    ContainerStopper,
    InteractiveCmdBuilder,
    TerminalManager,
    TerminalViewer,
)
from loop_server.terminal import _wire
from loop_server.terminal._manager import TerminalError
from loop_server.terminal._wire import ControlMessage, InvalidMessage

log = logging.getLogger("loop_server.terminal")


class ChannelGetter(Protocol):
    """Reads a channel (``protocols.ChannelLister`` satisfies it)."""

    async def get_channel(self, channel_id: str) -> Channel | None: ...


class TerminalSink(Protocol):
    """Where a connection writes. Writes are serialised by the sink; a failed write is the
    sink's to log: it never raises (SPEC §5.4: write errors never close the connection)."""

    async def send_text(self, payload: bytes) -> None:
        """One text frame (a status message)."""
        ...

    async def send_binary(self, payload: bytes) -> None:
        """One binary frame (the history, which SPEC §5.2 sends as one frame)."""
        ...

    async def send_output(self, payload: bytes) -> None:
        """Live output: binary frames of at most ``MAX_OUTPUT_FRAME`` bytes each, written
        together (clients often refuse messages over 1 MiB; a batch may be that big)."""
        ...


#: Largest binary frame of live output (upstream's frames are one 4 KiB read each).
MAX_OUTPUT_FRAME = 1 << 16


@dataclass(frozen=True, slots=True)
class TerminalServices:
    """The collaborators behind the terminal endpoint; all but the manager are optional."""

    manager: TerminalManager
    finder: ContainerFinder | None = None
    stopper: ContainerStopper | None = None
    channels: ChannelGetter | None = None
    cmd_builder: InteractiveCmdBuilder | None = None
    #: The loop dir: where a channel without a ``dir_path`` works (``Channel.work_dir``).
    loop_dir: str = ""


@dataclass(slots=True)
class _Current:
    session_id: str
    viewer: TerminalViewer
    #: Set when the streaming task has sent its ``closed`` (or the connection went away).
    streamed: trio.Event


class TerminalConnection:
    def __init__(
        self, services: TerminalServices, sink: TerminalSink, nursery: trio.Nursery
    ) -> None:
        self._services = services
        self._sink = sink
        self._nursery = nursery
        self._current: _Current | None = None
        self._handlers: dict[str, Callable[[ControlMessage], Awaitable[None]]] = {
            "create": self._create,
            "attach": self._attach,
            "input": self._input,
            "resize": self._resize,
            "stop": self._stop,
        }

    @property
    def session_id(self) -> str | None:
        """The connection's current session (it stays current after ``closed``)."""
        return self._current.session_id if self._current else None

    async def handle_message(self, payload: bytes) -> None:
        """Act on one client frame (text or binary: both are JSON control messages)."""
        try:
            message = _wire.parse_control(payload)
        except InvalidMessage:
            await self._error("invalid JSON", _wire.INVALID_JSON)
            return
        handler = self._handlers.get(message.type)
        if handler is None:
            await self._error(f"unknown message type: {message.type}", _wire.UNKNOWN_MESSAGE)
            return
        await handler(message)

    async def close(self) -> None:
        """The client is gone: detach from the current session, which keeps running."""
        current, self._current = self._current, None
        if current is not None:
            try:
                await self._services.manager.detach(current.session_id, current.viewer)
            except Exception as err:
                log.warning("terminal ws: detach failed session=%s: %s", current.session_id, err)

    # -- control messages -----------------------------------------------------------------

    async def _create(self, message: ControlMessage) -> None:
        services = self._services
        container_id = message.container_id
        channel_id = message.channel_id
        dir_path, claude_session, fork = "", "", False
        # Checked before any container is looked up or created: an invalid command must not
        # leave a new shell container behind (upstream creates it first, then refuses).
        cmd_problem = _wire.check_cmd(message.cmd)
        if not container_id and channel_id and services.finder is not None:
            if cmd_problem is not None:
                await self._error(cmd_problem, _wire.INVALID_INPUT)
                return
            dir_path, claude_session, fork = await self._channel_context(channel_id)
            try:
                container_id = await services.finder.find_container_by_channel(channel_id, dir_path)
            except Exception as err:
                await self._error(f"no running container for channel: {err}", _wire.SESSION_FAILED)
                return
        if not container_id:
            await self._error("container_id or channel_id required", _wire.MISSING_FIELD)
            return
        if cmd_problem is not None:
            await self._error(cmd_problem, _wire.INVALID_INPUT)
            return
        await self._leave_current()
        try:
            session_id, viewer, history = await services.manager.create_session(
                container_id, list(message.cmd)
            )
        except Exception as err:
            _log_unexpected(err)
            await self._error(str(err), _wire.SESSION_FAILED)
            return
        await self._start_streaming("created", session_id, viewer, history)
        if message.rows > 0 and message.cols > 0:
            try:
                await services.manager.resize(session_id, message.rows, message.cols)
            except Exception as err:
                log.warning("terminal ws: initial resize failed session=%s: %s", session_id, err)
        if not message.cmd and services.cmd_builder is not None and channel_id:
            await self._type_interactive_command(
                session_id, channel_id, dir_path, claude_session, fork
            )

    async def _channel_context(self, channel_id: str) -> tuple[str, str, bool]:
        """The channel's dir and the Claude session to resume: a thread whose session is
        empty or still its parent's forks the parent's (SPEC §5.2). Lookup errors are
        ignored, as upstream ignores them."""
        channels = self._services.channels
        if channels is None:
            return "", "", False
        try:
            channel = await channels.get_channel(channel_id)
            if channel is None:
                return "", "", False
            # The dir the channel's agents work in, so the shell sees the same files (a thread's
            # fallback dir is its parent's), and the finder and builder need no fallback.
            dir_path = channel.work_dir(self._services.loop_dir)
            session_id, fork = channel.session_id, False
            if channel.parent_id:
                parent = await channels.get_channel(channel.parent_id)
                if (
                    parent is not None
                    and parent.session_id
                    and session_id in ("", parent.session_id)
                ):
                    session_id, fork = parent.session_id, True
            return dir_path, session_id, fork
        except Exception as err:
            log.info("terminal ws: channel lookup failed channel=%s: %s", channel_id, err)
            return "", "", False

    async def _type_interactive_command(
        self, session_id: str, channel_id: str, dir_path: str, claude_session: str, fork: bool
    ) -> None:
        builder = self._services.cmd_builder
        assert builder is not None
        try:
            # The builder reads the project's config file: not in the Trio thread.
            line = await trio.to_thread.run_sync(
                builder.build_interactive_cmd, channel_id, dir_path, claude_session, fork
            )
            await self._services.manager.send_input(session_id, (line + "\n").encode())
        except Exception as err:
            log.warning("terminal ws: typing the claude command failed: %s", err)

    async def _attach(self, message: ControlMessage) -> None:
        if not message.session_id:
            await self._error("session_id required", _wire.MISSING_FIELD)
            return
        await self._leave_current()
        try:
            viewer, history = await self._services.manager.attach_session(message.session_id)
        except Exception as err:
            _log_unexpected(err)
            await self._error(str(err), _wire.SESSION_FAILED)
            return
        await self._start_streaming("attached", message.session_id, viewer, history)

    async def _input(self, message: ControlMessage) -> None:
        if self._current is None:
            await self._error("no active session", _wire.NO_SESSION)
            return
        try:
            data = _wire.decode_input(message.data)
        except InvalidMessage:
            await self._error("invalid base64 data", _wire.INVALID_INPUT)
            return
        try:
            await self._services.manager.send_input(self._current.session_id, data)
        except Exception as err:
            log.info("terminal ws: input failed session=%s: %s", self._current.session_id, err)
            await self._error(str(err), _wire.SESSION_FAILED)

    async def _resize(self, message: ControlMessage) -> None:
        if self._current is None:
            await self._error("no active session", _wire.NO_SESSION)
            return
        if message.rows == 0 or message.cols == 0:
            await self._error("rows and cols required", _wire.MISSING_FIELD)
            return
        try:
            await self._services.manager.resize(
                self._current.session_id, message.rows, message.cols
            )
        except Exception as err:
            await self._error(str(err), _wire.SESSION_FAILED)

    async def _stop(self, message: ControlMessage) -> None:
        # Upstream later also accepts a session_id, to stop a detached session.
        current = self._current
        session_id = message.session_id or (current.session_id if current else "")
        if not session_id:
            await self._error("no active session", _wire.NO_SESSION)
            return
        try:
            container_id = await self._services.manager.stop_session(session_id)
        except Exception as err:
            _log_unexpected(err)
            await self._error(str(err), _wire.SESSION_FAILED)
            return
        if current is not None and current.session_id == session_id:
            # The manager has ended the viewer: no detach; its streaming task sends ``closed``.
            self._current = None
            await current.streamed.wait()
        stopper = self._services.stopper
        if stopper is not None and container_id:
            # Before answering, so that a channel listing right after shows it gone.
            try:
                await stopper.container_remove(container_id)
            except Exception as err:
                log.warning("terminal ws: removing container %s failed: %s", container_id, err)
        await self._sink.send_text(_wire.STOPPED)

    # -- streaming ------------------------------------------------------------------------

    async def _leave_current(self) -> None:
        """Detach from the current session and wait for its streaming task to send
        ``closed``: the old session's frames all come before the new one's."""
        current = self._current
        if current is None:
            return
        await self.close()
        await current.streamed.wait()

    async def _start_streaming(
        self, answer: str, session_id: str, viewer: TerminalViewer, history: bytes
    ) -> None:
        # Current at once, before any checkpoint: a disconnect from here on detaches it.
        current = _Current(session_id, viewer, trio.Event())
        self._current = current
        await self._sink.send_text(_wire.encode_status(answer, session_id=session_id))
        if history:
            await self._sink.send_binary(history)
        self._nursery.start_soon(self._stream, current, name=f"terminal stream {session_id}")

    async def _stream(self, current: _Current) -> None:
        # This task is the only one that writes the session's output to this connection: the
        # session's pump only queues it in the viewer (no socket write outside its owner).
        try:
            while True:
                try:
                    output = await current.viewer.receive_output()
                except trio.EndOfChannel:
                    break
                await self._sink.send_output(output)
            await self._sink.send_text(_wire.CLOSED)
        finally:
            current.streamed.set()

    async def _error(self, message: str, error_code: str) -> None:
        await self._sink.send_text(_wire.encode_error(message, error_code))


def _log_unexpected(err: Exception) -> None:
    # Manager errors are for the client; anything else is a bug worth a traceback.
    if not isinstance(err, TerminalError):
        log.error("terminal ws: unexpected error", exc_info=err)
