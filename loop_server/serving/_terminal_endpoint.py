"""``GET /api/ws/terminal`` from a complete request head to a running terminal connection.

Served on the socket like ``/api/ws`` (docs/terminal.md says why): the listener hands over the
connection once it has the head, and output frames go straight from the session's viewer to
the socket.
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio

from loop_server.protocols import (
    ContainerFinder,
    ContainerStopper,
    InteractiveCmdBuilder,
    TerminalManager,
)
from loop_server.serving._events_endpoint import Authorize, _answer
from loop_server.serving._request_head import (
    ANY_ORIGIN_LINES,
    RequestHead,
    plain_response,
    switching_protocols,
    websocket_key,
)
from loop_server.serving._terminal_socket import TerminalSocket
from loop_server.terminal import ChannelGetter, TerminalServices

logger = logging.getLogger("loop_server.serving")

CLOSE_GOING_AWAY = 1001


class TerminalTransport(Protocol):
    """A terminal connection as the endpoint tracks it (the listener's or the ASGI one)."""

    def begin_close(self, code: int, reason: str) -> None: ...

    async def run(self, opening: bytes, leftover: bytes) -> None: ...


class TerminalEndpoint:
    """What ``serve()`` needs to answer ``/api/ws/terminal`` (SPEC §5).

    ``manager`` None: the endpoint answers ``501 terminal not configured``, as upstream does.
    ``authorize`` is the events endpoint's check (SPEC A.2: bearer header or ``?token=``).
    """

    def __init__(
        self,
        manager: TerminalManager | None,
        authorize: Authorize,
        *,
        finder: ContainerFinder | None = None,
        stopper: ContainerStopper | None = None,
        channels: ChannelGetter | None = None,
        cmd_builder: InteractiveCmdBuilder | None = None,
        loop_dir: str = "",
        path: str = "/api/ws/terminal",
        max_message_size: int = 1 << 20,
        close_timeout: float = 10.0,
    ) -> None:
        self.services = (
            TerminalServices(manager, finder, stopper, channels, cmd_builder, loop_dir)
            if manager is not None
            else None
        )
        self.authorize = authorize
        self.path = path
        #: Client messages over this close the connection with 1009 (SPEC A.2).
        self.max_message_size = max_message_size
        #: How long a closing handshake may take before the socket is dropped.
        self.close_timeout = close_timeout
        self._sockets: set[TerminalTransport] = set()
        self._shutting_down = False

    @property
    def connections(self) -> int:
        return len(self._sockets)

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down") -> None:
        """Close every terminal WebSocket (shutdown), and any that is still being opened.
        The sessions themselves belong to the manager."""
        self._shutting_down = True
        for socket in list(self._sockets):
            socket.begin_close(code, reason)

    async def serve_socket(
        self, socket: TerminalTransport, opening: bytes, leftover: bytes
    ) -> None:
        self._sockets.add(socket)
        try:
            if self._shutting_down:
                socket.begin_close(CLOSE_GOING_AWAY, "server shutting down")
            await socket.run(opening, leftover)
        finally:
            self._sockets.discard(socket)


async def serve_terminal_request(
    stream: trio.SocketStream,
    endpoint: TerminalEndpoint,
    head: RequestHead,
    leftover: bytes,
    cors: bytes = ANY_ORIGIN_LINES,
) -> None:
    """Answer a terminal request (the origin policy allowed it, with ``cors`` for its answers):
    a plain HTTP error, or the upgrade and the connection."""
    if not endpoint.authorize(head.headers, head.query):
        await _answer(stream, plain_response(401, "unauthorized\n", cors=cors))
        return
    services = endpoint.services
    if services is None:
        await _answer(stream, plain_response(501, "terminal not configured\n", cors=cors))
        return
    key = websocket_key(head)
    if key is None:
        logger.info("terminal websocket upgrade failed")
        extra = b"Sec-WebSocket-Version: 13\r\n"
        await _answer(stream, plain_response(400, "Bad Request\n", extra, cors))
        return
    socket = TerminalSocket(
        stream,
        services,
        max_message_size=endpoint.max_message_size,
        close_timeout=endpoint.close_timeout,
    )
    await endpoint.serve_socket(socket, switching_protocols(key), leftover)
