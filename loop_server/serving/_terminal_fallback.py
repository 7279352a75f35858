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

from loop_server.serving._asgi_fallback import Receive, Scope, Send, _headers, _query
from loop_server.serving._rfc6455 import CLOSE_MESSAGE_TOO_BIG
from loop_server.serving._terminal_endpoint import TerminalEndpoint
from loop_server.terminal import MAX_OUTPUT_FRAME, TerminalConnection, TerminalServices

logger = logging.getLogger("loop_server.serving")


class TerminalFallback:
    def __init__(self, app: Callable[..., Awaitable[None]], endpoint: TerminalEndpoint) -> None:
        self._app = app
        self._endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket") and scope["path"] == self._endpoint.path:
            if kind == "websocket":
                await self._websocket(scope, receive, send)
                return
            if scope["method"] == "GET":
                await self._http(scope, send)
                return
        await self._app(scope, receive, send)

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = [(bytes(name).lower(), bytes(value)) for name, value in scope["headers"]]
        if not self._endpoint.authorize(headers, _query(scope)):
            return 401, "unauthorized\n"
        if self._endpoint.services is None:
            return 501, "terminal not configured\n"
        return None

    async def _http(self, scope: Scope, send: Send) -> None:
        status, body = self._refusal(scope) or (400, "Bad Request\n")
        payload = body.encode()
        start = {"type": "http.response.start", "status": status}
        await send({**start, "headers": _headers(payload)})
        await send({"type": "http.response.body", "body": payload})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope)
        services = self._endpoint.services
        if refusal is not None or services is None:
            status, body = refusal or (501, "terminal not configured\n")
            if "websocket.http.response" in scope.get("extensions", {}):
                payload = body.encode()
                start = {"type": "websocket.http.response.start", "status": status}
                await send({**start, "headers": _headers(payload)})
                await send({"type": "websocket.http.response.body", "body": payload})
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        if (await receive())["type"] != "websocket.connect":
            return
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
