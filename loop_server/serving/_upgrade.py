"""The one gate every WebSocket upgrade passes, on either path and however it arrived.

``refusal`` decides whether a request for ``/api/ws`` or ``/api/ws/terminal`` may become a
WebSocket: the caller's credentials (SPEC A.2), whether the endpoint is configured (501), and
whether the request is a valid RFC 6455 upgrade (400). Both endpoints call it, for the first
request of a connection and for one that arrives on a reused keep-alive connection alike. The
origin policy (403) is judged before it, once, by the listener (``_serve._Router._upgrade``),
which every upgrade passes whatever came before it on the connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from loop_server.origin_policy import Headers
from loop_server.serving._request_head import (
    VERSION_HEADER,
    RequestHead,
    plain_response,
    websocket_key,
)

logger = logging.getLogger("loop_server.serving")

#: Gets the request headers (names lower-cased) and the query (first value of each parameter)
#: and says whether the caller may connect (SPEC A.2: bearer header or ``?token=``).
Authorize = Callable[[list[tuple[bytes, bytes]], dict[str, str]], bool]


def refusal(
    head: RequestHead, authorize: Authorize, *, configured: bool, what: str, cors: Headers
) -> bytes | None:
    """The complete HTTP answer refusing the upgrade, or None when it may proceed. ``what``
    names the endpoint in its answers and logs (``events``, ``terminal``); ``cors``: the CORS
    headers the origin policy (judged before, by the listener) gave the request."""
    if not authorize(head.headers, head.query):
        return plain_response(401, "unauthorized\n", cors=cors)
    if not configured:
        return plain_response(501, f"{what} not configured\n", cors=cors)
    if websocket_key(head) is None:
        logger.info("%s websocket upgrade failed", what)
        return plain_response(400, "Bad Request\n", (VERSION_HEADER,), cors=cors)
    return None


async def answer(stream: trio.SocketStream, response: bytes) -> None:
    """Send a refusal and close the connection."""
    try:
        await stream.send_all(response)
        await stream.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await trio.aclose_forcefully(stream)
