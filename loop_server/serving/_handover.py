"""Taking a keep-alive connection back from hypercorn when a WebSocket path is requested on it.

The listener sees only the first request of a connection. A client that reuses a keep-alive
connection for ``GET /api/ws`` would otherwise reach hypercorn's own WebSocket handling, which
answers differently (it negotiates permessage-deflate, refuses HTTP/1.0 upgrades itself, lets
an unmasked frame through): two behaviours for one endpoint. Instead, hypercorn's HTTP/1.1
protocol is given one extra step before it acts on each request head: a ``GET`` of a path
served on the socket raises ``Handover`` with the parsed head and the bytes read after it.
hypercorn only parses a request once its answer to the previous one is complete, so at that
point nothing of hypercorn's is left on the wire and the socket can change hands; the stream
wrapper then ignores hypercorn's own closing of it.

The same two classes carry what we change in how hypercorn serves HTTP/1.1 on every
connection: each answer is written in one ``send`` (``_HandoverH11._send_h11_event``), its
status line carries its reason phrase (``_reason_phrase``), and the keep-alive timer starts no
task per request (``_keep_alive``).

This relies on hypercorn internals (``TCPServer`` assigning ``self.protocol`` in ``run`` and
keeping its timer in ``idle_task``; ``H11Protocol._check_protocol`` seeing each request first
and ``_send_h11_event`` writing every event); hypercorn is pinned, and the handover, status
line, keep-alive and shutdown tests fail loudly if any of them changes.
"""

from __future__ import annotations

from typing import Any

import h11
import trio
from hypercorn.events import RawData
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.tcp_server import TCPServer

from loop_server.serving._keep_alive import KeepAliveTimer
from loop_server.serving._prefixed_stream import PrefixedStream
from loop_server.serving._reason_phrase import with_reason
from loop_server.serving._request_head import RequestHead, head_from_request


class Handover(Exception):
    """A request for a path served on the socket arrived on a connection hypercorn holds."""

    def __init__(self, which: int, head: RequestHead, leftover: bytes) -> None:
        super().__init__(head.path)
        #: Index of the path in the listener's list.
        self.which = which
        self.head = head
        #: What the client sent after the request head.
        self.leftover = leftover


class HandoverServer(TCPServer):  # type: ignore[misc]  # hypercorn is untyped here
    """hypercorn's connection driver, whose HTTP/1.1 protocol gives ``GET``s of ``paths``
    back by raising ``Handover`` out of ``run()``."""

    def __init__(self, *args: Any, paths: list[bytes], stream: PrefixedStream) -> None:
        super().__init__(*args, stream)  # type: ignore[call-arg]
        self._paths = paths
        self._prefixed = stream
        self._wrapper: ProtocolWrapper | None = None
        self._keep_alive = KeepAliveTimer(
            self.config.keep_alive_timeout, self.context.terminated, self._initiate_server_close
        )
        self.idle_task = self._keep_alive  # type: ignore[assignment]  # same interface

    async def _read_data(self) -> None:
        try:
            await super()._read_data()
        finally:
            # Nothing more comes in: no idle time left to watch (hypercorn's own timer task
            # lingered for keep_alive_timeout after the client had gone).
            self._keep_alive.close()

    @property  # type: ignore[override]
    def protocol(self) -> ProtocolWrapper:
        assert self._wrapper is not None
        return self._wrapper

    @protocol.setter
    def protocol(self, wrapper: ProtocolWrapper) -> None:
        # Called once, by run(), before the protocol has seen a byte: swap in ours.
        inner = wrapper.protocol
        if isinstance(inner, H11Protocol):
            wrapper.protocol = _HandoverH11(
                self._paths,
                self._prefixed,
                wrapper.app,
                wrapper.config,
                wrapper.context,
                wrapper.task_group,
                wrapper.state,
                wrapper.ssl,
                wrapper.client,
                wrapper.server,
                wrapper.send,
            )
        self._wrapper = wrapper


class _HandoverH11(H11Protocol):  # type: ignore[misc]
    def __init__(self, paths: list[bytes], stream: PrefixedStream, *args: Any) -> None:
        super().__init__(*args)
        self._paths = paths
        self._prefixed = stream
        self._held_head = b""  # a response's head, written with what follows it

    async def _send_h11_event(self, event: Any) -> None:
        """hypercorn's, but each answer in one write, and status lines with their phrase.

        hypercorn writes a response's head, its body and its end (``b""`` with a
        Content-Length) in three writes; the client then wakes for the head alone. The
        head is held and written with the body, or with the end when there is no body (204,
        HEAD). The head of a response the app abandons before any body is never written:
        hypercorn closes that connection, as it does after a partial body."""
        event = with_reason(event)
        try:
            data = self.connection.send(event)
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            return
        if isinstance(event, h11.Response):
            self._held_head = data
            return
        if self._held_head:
            data, self._held_head = self._held_head + data, b""
        if data:
            await self.send(RawData(data=data))
        else:
            await trio.lowlevel.checkpoint()

    async def _check_protocol(self, event: h11.Request) -> None:
        if event.method == b"GET":
            path = event.target.partition(b"?")[0]
            if path in self._paths:
                leftover = bytes(self.connection.trailing_data[0]) + self._prefixed.release()
                raise Handover(self._paths.index(path), head_from_request(event), leftover)
        await super()._check_protocol(event)
