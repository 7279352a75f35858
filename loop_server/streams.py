"""Socket-stream I/O shared by every reader and writer of a socket: how much one read asks
for (``RECEIVE_SIZE``), and one non-blocking write or read without a task switch.

``send_all`` always yields to the scheduler, even when the socket takes everything at once.
On the keystroke-echo path (a few bytes each way) those switches are a visible share of the
round trip, so writers try this first and fall back to ``send_all`` for whatever is left.
Callers hold their stream's write lock, so nothing else writes in between.
"""

from __future__ import annotations

import os

import trio

RECEIVE_SIZE = 65536  # bytes one read of a socket asks for (HTTP, WebSocket, Docker streams)


def write_nowait(stream: trio.abc.Stream, data: bytes | memoryview) -> int:
    """Bytes written (0 when the socket takes none now, or on an error ``send_all`` will then
    report), or -1 when ``stream`` has no descriptor (not a socket, or closed)."""
    if not isinstance(stream, trio.SocketStream):
        return -1
    # Asked each time, never cached: a closed socket answers -1, and its number may already
    # belong to another connection.
    fd = stream.socket.fileno()
    if fd < 0:
        return -1
    try:
        return os.write(fd, data)
    except OSError:
        return 0


async def receive_eagerly(stream: trio.abc.ReceiveStream, max_bytes: int) -> bytes:
    """``receive_some``, minus its task switch after a read that found data waiting.

    Trio's ``receive_some`` yields to the scheduler *after* a successful read, before its
    caller sees the bytes: on a latency-bound path that is one scheduler pass between a
    keystroke's echo arriving and it being passed on. Here the read comes first and the
    caller yields after acting on the bytes (it must: ``checkpoint`` after each chunk), so
    floods still take turns with everything else.
    """
    if not isinstance(stream, trio.SocketStream):
        return bytes(await stream.receive_some(max_bytes))
    while True:
        fd = stream.socket.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("the stream was closed")
        try:
            return os.read(fd, max_bytes)
        except BlockingIOError:
            pass
        except OSError as err:
            raise trio.BrokenResourceError(str(err)) from err
        await trio.lowlevel.wait_readable(stream.socket)
