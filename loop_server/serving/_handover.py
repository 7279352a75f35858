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

This relies on two hypercorn internals (``TCPServer`` assigning ``self.protocol`` in ``run``,
and ``H11Protocol._check_protocol`` seeing each request first); hypercorn is pinned, and the
handover tests fail loudly if either changes.
"""

from __future__ import annotations

from typing import Any

import h11
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.tcp_server import TCPServer

from loop_server.serving._prefixed_stream import PrefixedStream
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

    async def _check_protocol(self, event: h11.Request) -> None:
        if event.method == b"GET":
            path = event.target.partition(b"?")[0]
            if path in self._paths:
                leftover = bytes(self.connection.trailing_data[0]) + self._prefixed.release()
                raise Handover(self._paths.index(path), head_from_request(event), leftover)
        await super()._check_protocol(event)
