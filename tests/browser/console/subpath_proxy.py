"""A reverse proxy that serves loop-server under a sub-path, as nginx's
``location /loop/ { proxy_pass http://127.0.0.1:PORT/; }`` would: ``/loop/x`` is forwarded as
``/x``, WebSocket upgrades included; anything outside the prefix is sent to a path the server
does not have, so a page that used an absolute URL would see it fail. It can also cut its
WebSockets and refuse new connections for a while: a network that fails while the server
keeps running.

Test-only and minimal: HTTP/1.1 requests with ``Content-Length`` bodies (what a browser's
``fetch`` of a string sends), then raw bytes after an upgrade. Loopback only.
"""

from __future__ import annotations

import re
from functools import partial

import trio

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_UPGRADE = re.compile(rb"\r\nupgrade:\s*websocket", re.IGNORECASE)
OUTSIDE = b"/outside-the-proxy-prefix"


class SubPathProxy:
    def __init__(self, upstream_port: int, prefix: str = "/loop") -> None:
        self.upstream_port = upstream_port
        self.prefix = prefix.encode()
        self.port = 0
        self.rewritten: list[bytes] = []  # every request target, as the server received it
        self.refusing = False  # while set, new connections are closed at once
        self._sockets: set[trio.CancelScope] = set()  # upgraded connections (WebSockets)

    def drop_sockets(self) -> int:
        """Cut every WebSocket going through the proxy (TCP closed, no close frame: as a
        network that fails); how many were cut."""
        for scope in self._sockets:
            scope.cancel()
        return len(self._sockets)

    @property
    def sockets(self) -> int:
        return len(self._sockets)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._connection, listeners)

    def rewrite(self, target: bytes) -> bytes:
        if target.startswith(self.prefix + b"/"):
            return target[len(self.prefix) :]
        return OUTSIDE + target

    async def _connection(self, client: trio.SocketStream) -> None:
        async with client:
            if self.refusing:
                return
            try:
                upstream = await trio.open_tcp_stream("127.0.0.1", self.upstream_port)
            except OSError:
                return  # the server is down: the browser sees the connection close
            async with upstream, trio.open_nursery() as nursery:
                nursery.start_soon(partial(_pipe, upstream, client, nursery.cancel_scope))
                await self._requests(client, upstream)
                nursery.cancel_scope.cancel()

    async def _requests(self, client: trio.SocketStream, upstream: trio.SocketStream) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await client.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                end = buffer.index(b"\r\n\r\n") + 4
                head, buffer = buffer[:end], buffer[end:]
                line, rest = head.split(b"\r\n", 1)
                method, target, version = line.split(b" ", 2)
                target = self.rewrite(target)
                self.rewritten.append(target)
                await upstream.send_all(b" ".join((method, target, version)) + b"\r\n" + rest)
                if _UPGRADE.search(head):
                    with trio.CancelScope() as scope:
                        self._sockets.add(scope)
                        try:
                            if buffer:
                                await upstream.send_all(buffer)
                            await _pipe(client, upstream, None)
                        finally:
                            self._sockets.discard(scope)
                    return
                length = _CONTENT_LENGTH.search(head)
                remaining = int(length.group(1)) if length else 0
                while remaining:
                    if not buffer:
                        buffer = await client.receive_some(65536)
                        if not buffer:
                            return
                    body, buffer = buffer[:remaining], buffer[remaining:]
                    await upstream.send_all(body)
                    remaining -= len(body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return


async def _pipe(
    source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope | None
) -> None:
    try:
        while chunk := await source.receive_some(65536):
            await sink.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    if done is not None:
        done.cancel()
