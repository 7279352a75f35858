"""``/api/ws/terminal`` for requests that reach hypercorn anyway.

The listener serves the terminal path on the socket when it is a connection's *first*
request; a client that reuses a keep-alive connection for its upgrade reaches hypercorn, and
this ASGI wrapper answers it with the same conversation (``TerminalConnection``) and the same
refusals. Everything else goes to the wrapped app.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from loop_server.origin_policy import OriginPolicy
from loop_server.serving._asgi_fallback import Receive, Scope, Send, WebSocketFallback
from loop_server.serving._rfc6455 import CLOSE_MESSAGE_TOO_BIG
from loop_server.serving._terminal_endpoint import TerminalEndpoint
from loop_server.terminal import MAX_OUTPUT_FRAME, TerminalConnection, TerminalServices

logger = logging.getLogger("loop_server.serving")


class TerminalFallback(WebSocketFallback):
    not_configured = "terminal not configured\n"

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        endpoint: TerminalEndpoint,
        policy: OriginPolicy,
    ) -> None:
        super().__init__(app, endpoint.path, endpoint.authorize, policy)
        self._endpoint = endpoint

    def _configured(self) -> bool:
        return self._endpoint.services is not None

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = self._endpoint.services
        assert services is not None  # _configured said so
        await send({"type": "websocket.accept"})
        socket = _AsgiTerminal(services, receive, send, self._endpoint.max_message_size)
        await self._endpoint.serve_socket(socket, b"", b"")


class _AsgiTerminal:
    """A terminal connection over ASGI messages: the ``TerminalSink`` and the read loop."""

    def __init__(
        self, services: TerminalServices, receive: Receive, send: Send, max_message_size: int
    ) -> None:
        self._services = services
        self._receive = receive
        self._send_message = send
        self._max_message_size = max_message_size
        self._lock = trio.Lock()
        self._broken = False
        self._closed = False
        self._close_requested = trio.Event()
        self._close_sent = trio.Event()
        self._close: tuple[int, str] = (1000, "")

    def begin_close(self, code: int, reason: str) -> None:
        if not self._close_requested.is_set():
            self._close = (code, reason)
            self._close_requested.set()

    async def run(self, opening: bytes, leftover: bytes) -> None:
        connection: TerminalConnection | None = None
        try:
            async with trio.open_nursery() as nursery:
                connection = TerminalConnection(self._services, self, nursery)
                nursery.start_soon(self._closer, nursery.cancel_scope)
                await self._read(connection)
                if self._close_requested.is_set():
                    await self._close_sent.wait()  # the closer sends it, then cancels
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                if connection is not None:
                    await connection.close()

    async def _read(self, connection: TerminalConnection) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] != "websocket.receive":
                continue
            payload = message.get("bytes") or (message.get("text") or "").encode()
            if len(payload) > self._max_message_size:
                self.begin_close(CLOSE_MESSAGE_TOO_BIG, "message too big")
                return
            if self._close_requested.is_set():
                continue
            await connection.handle_message(payload)

    async def _closer(self, scope: trio.CancelScope) -> None:
        await self._close_requested.wait()
        code, reason = self._close
        await self._write({"type": "websocket.close", "code": code, "reason": reason})
        self._closed = True
        self._close_sent.set()
        scope.cancel()

    async def send_text(self, payload: bytes) -> None:
        await self._write({"type": "websocket.send", "text": payload.decode()})

    async def send_binary(self, payload: bytes) -> None:
        await self._write({"type": "websocket.send", "bytes": payload})

    async def send_output(self, payload: bytes) -> None:
        for start in range(0, len(payload), MAX_OUTPUT_FRAME):
            await self.send_binary(payload[start : start + MAX_OUTPUT_FRAME])

    def write_output_now(self, payload: bytes) -> bool:
        return False  # ASGI sends are awaited: output goes through the streaming task

    async def _write(self, message: dict[str, Any]) -> None:
        if self._broken or self._closed:
            await trio.lowlevel.checkpoint()
            return
        async with self._lock:
            try:
                await self._send_message(message)
            except Exception as err:  # hypercorn's errors for a connection that is gone vary
                self._broken = True
                logger.info("terminal ws: write failed: %s", err)
