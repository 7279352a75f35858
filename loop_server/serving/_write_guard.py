"""Bounds on hypercorn's socket writes: a stall timeout, and a cut when shutdown runs out of time.

hypercorn shields every ``send_all`` from cancellation (``TCPServer.protocol_send``), and has no
write timeout, so a client that stops reading a response would hold its connection — and a
graceful shutdown — for as long as it likes. A scope opened *inside* that shield can still be
cancelled by its own deadline or by ``cancel()``: this guard opens one around each write.
A write that ends that way closes the socket and raises ``BrokenResourceError``, which
hypercorn already handles as the peer going away, so a response is never half-sent silently.
"""

from __future__ import annotations

import errno
import fcntl
import math
import struct
import termios

import trio

from loop_server.streams import write_nowait


class WriteGuard:
    """Shared by every HTTP connection of one listener."""

    def __init__(self, stall_timeout: float | None = None) -> None:
        self._stall_timeout = math.inf if stall_timeout is None else stall_timeout
        self._writes: set[trio.CancelScope] = set()
        self._cut = False

    def cut_all(self) -> None:
        """End every write in flight, and fail every later one at once."""
        self._cut = True
        for scope in list(self._writes):
            scope.cancel()

    async def send_all(
        self, stream: trio.SocketStream, data: bytes | bytearray | memoryview
    ) -> None:
        """``stream.send_all(data)``, one ``send`` at a time under the guard."""
        with memoryview(data) as view:
            if not view:
                await trio.lowlevel.checkpoint()
                return
            sent = 0
            if not self._cut:
                # One non-blocking write first: a response nearly always fits in the socket's
                # buffer, and then the stall bookkeeping (an ioctl and a cancel scope per send)
                # is not needed. The checkpoints are those of Trio's own ``send``.
                await trio.lowlevel.checkpoint_if_cancelled()
                sent = max(write_nowait(stream, view), 0)
                if sent == len(view):
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return
            while sent < len(view):
                with view[sent:] as rest:
                    sent += await self._send_some(stream, rest)

    async def _send_some(self, stream: trio.SocketStream, data: memoryview) -> int:
        # The kernel reports a socket writable only once a good part of its send buffer is free
        # (megabytes, with autotuning), so a slow reader can drain bytes for a long time without
        # a ``send`` getting through: progress is what leaves the send queue, not what enters.
        unsent = _unsent_bytes(stream)
        while not self._cut:
            with trio.CancelScope(deadline=trio.current_time() + self._stall_timeout) as scope:
                self._writes.add(scope)
                try:
                    # A cancelled ``send`` sent nothing (trio cancels only its wait), so it can
                    # simply be tried again.
                    return await stream.socket.send(data)
                except OSError as err:
                    if err.errno == errno.EBADF:
                        raise trio.ClosedResourceError("this stream was closed") from err
                    raise trio.BrokenResourceError(f"socket connection broken: {err}") from err
                finally:
                    self._writes.discard(scope)
            now_unsent = _unsent_bytes(stream)
            if unsent is None or now_unsent is None or now_unsent >= unsent:
                await trio.aclose_forcefully(stream)
                raise trio.BrokenResourceError(
                    f"client read nothing for {self._stall_timeout:g} s; connection closed"
                )
            unsent = now_unsent  # the client is reading, slowly: keep waiting
        await trio.aclose_forcefully(stream)
        raise trio.BrokenResourceError("server shut down while the response was being sent")


def _unsent_bytes(stream: trio.SocketStream) -> int | None:
    """Bytes in the socket's send queue not yet acknowledged by the peer (Linux ``SIOCOUTQ``);
    None where the platform cannot tell, and then any stall of the timeout's length counts."""
    try:
        raw = fcntl.ioctl(stream.socket.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):
        return None
    value: int = struct.unpack("i", raw)[0]
    return value


async def cut_writes_at(guard: WriteGuard, deadline: float) -> None:
    """At the graceful deadline, cut the writes that hypercorn shields from it."""
    await trio.sleep_until(deadline)
    guard.cut_all()
