"""``GET /api/ws/terminal`` from a complete request head to a running terminal connection.

Served on the socket like ``/api/ws`` (docs/terminal.md says why): the listener hands over the
connection once it has the head, whether it was the connection's first request or not.
"""

from __future__ import annotations

import trio

from loop_server import websocket_close
from loop_server.origin_policy import ANY_ORIGIN, Headers
from loop_server.protocols import (
    ContainerFinder,
    ContainerStopper,
    InteractiveCmdBuilder,
    TerminalManager,
)
from loop_server.serving._request_head import RequestHead, switching_protocols, websocket_key
from loop_server.serving._terminal_socket import TerminalSocket
from loop_server.serving._upgrade import Authorize, answer, refusal
from loop_server.terminal import ChannelGetter, TerminalServices


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
        self._sockets: set[TerminalSocket] = set()
        self._shutting_down = False

    @property
    def connections(self) -> int:
        return len(self._sockets)

    def close_all(
        self,
        code: int = websocket_close.GOING_AWAY,
        reason: str = websocket_close.SHUTDOWN_REASON,
    ) -> None:
        """Close every terminal WebSocket (shutdown), and any that is still being opened.
        The sessions themselves belong to the manager."""
        self._shutting_down = True
        for socket in list(self._sockets):
            socket.begin_close(code, reason)

    async def serve_socket(self, socket: TerminalSocket, opening: bytes, leftover: bytes) -> None:
        self._sockets.add(socket)
        try:
            if self._shutting_down:
                socket.begin_close(websocket_close.GOING_AWAY, websocket_close.SHUTDOWN_REASON)
            await socket.run(opening, leftover)
        finally:
            self._sockets.discard(socket)


async def serve_terminal_request(
    stream: trio.SocketStream,
    endpoint: TerminalEndpoint,
    head: RequestHead,
    leftover: bytes,
    cors: Headers = ANY_ORIGIN,
) -> None:
    """Answer a terminal request (the origin policy allowed it, with ``cors`` for
    its answers): a plain HTTP error, or the upgrade and the connection."""
    services = endpoint.services
    refused = refusal(
        head, endpoint.authorize, configured=services is not None, what="terminal", cors=cors
    )
    if refused is not None:
        await answer(stream, refused)
        return
    assert services is not None  # refusal() said so
    key = websocket_key(head)
    assert key is not None  # refusal() said so
    socket = TerminalSocket(
        stream,
        services,
        max_message_size=endpoint.max_message_size,
        close_timeout=endpoint.close_timeout,
    )
    await endpoint.serve_socket(socket, switching_protocols(key), leftover)
