"""The WebSocket paths for requests that reach hypercorn: methods other than ``GET``.

Every ``GET`` of ``/api/ws`` or ``/api/ws/terminal`` is served on the socket, whether it is the
connection's first request or comes later on a keep-alive connection (``_handover``), so no
upgrade ever takes hypercorn's WebSocket path. What is left for ASGI is plain HTTP: ``HEAD``
gets the answer a plain ``GET`` gets (403 from the origin policy, 401, 501 or 400), any other
method 405, with the same header set as every other refusal. ``OPTIONS`` preflights and other
paths go to the wrapped app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from loop_server.bearer import challenge
from loop_server.origin_policy import ANY_ORIGIN, Headers, OriginPolicy
from loop_server.plain_text import TEXT_HEADERS
from loop_server.serving._request_head import VERSION_HEADER
from loop_server.serving._upgrade import Authorize

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# A body sent to a WebSocket route is read and dropped before the 405; past this much the
# connection is closed instead of read further.
_DRAIN_LIMIT = 1 << 20


@dataclass(frozen=True, slots=True)
class WebSocketRoute:
    """One path served on the socket, as the fallback needs to refuse requests for it."""

    authorize: Authorize
    configured: bool
    #: Names the endpoint in its 501 answer (``events``, ``terminal``).
    what: str


class WebSocketFallback:
    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        routes: Mapping[str, WebSocketRoute],
        policy: OriginPolicy,
    ) -> None:
        self._app = app
        self._routes = dict(routes)
        self._policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is not None and scope["method"] != "OPTIONS":  # preflights are the gateway's
            verdict = self._policy.judge(scope["headers"], over_tcp=scope.get("server") is not None)
            if scope["method"] in ("GET", "HEAD"):  # a GET route answers HEAD too
                await self._http(route, scope, send, verdict.refusal, verdict.cors)
            else:
                await self._not_allowed(route, scope, receive, send, verdict.refusal, verdict.cors)
            return
        await self._app(scope, receive, send)

    async def _http(
        self,
        route: WebSocketRoute,
        scope: Scope,
        send: Send,
        forbidden: str | None,
        cors: Headers,
    ) -> None:
        # Not an upgrade: the same answers as the listener gives.
        if forbidden is not None:
            await _answer(send, 403, forbidden + "\n", cors=())
        elif not _authorized(route, scope):
            await _answer(send, 401, "unauthorized\n", cors=cors)
        elif not route.configured:
            await _answer(send, 501, f"{route.what} not configured\n", cors=cors)
        else:
            await _answer(send, 400, "Bad Request\n", [VERSION_HEADER], cors)

    async def _not_allowed(
        self,
        route: WebSocketRoute,
        scope: Scope,
        receive: Receive,
        send: Send,
        forbidden: str | None,
        cors: Headers,
    ) -> None:
        """Another method on the route: Go's ServeMux answers 405 (SPEC §1.4), after the
        token check that every path has here."""
        # The body first, as the gateway reads it: an answer given while the client is still
        # sending would leave a keep-alive connection stuck.
        extra: list[tuple[bytes, bytes]] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # gone
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
            if size > _DRAIN_LIMIT:
                extra.append((b"connection", b"close"))
                break
        if forbidden is not None:
            await _answer(send, 403, forbidden + "\n", extra, ())
        elif not _authorized(route, scope):
            await _answer(send, 401, "unauthorized\n", extra, cors)
        else:
            allow = [(b"allow", b"GET, HEAD"), *extra]
            await _answer(send, 405, "Method Not Allowed\n", allow, cors)


def _authorized(route: WebSocketRoute, scope: Scope) -> bool:
    headers = [(bytes(name).lower(), bytes(value)) for name, value in scope["headers"]]
    return route.authorize(headers, _query(scope))


async def _answer(
    send: Send,
    status: int,
    body: str,
    extra: list[tuple[bytes, bytes]] | None = None,
    cors: Headers = ANY_ORIGIN,
) -> None:
    payload = body.encode()
    length = (b"content-length", str(len(payload)).encode())
    headers = [*TEXT_HEADERS, *cors, *challenge(status), *(extra or ()), length]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _query(scope: Scope) -> dict[str, str]:
    query: dict[str, str] = {}
    raw = bytes(scope.get("query_string", b"")).decode("latin-1")
    for key, value in parse_qsl(raw, keep_blank_values=True):
        query.setdefault(key, value)
    return query
