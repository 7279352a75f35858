"""``/api/ws`` for requests that reach hypercorn anyway.

The listener only sees the *first* request of each connection. A client that reuses a
keep-alive connection for its upgrade (or its plain ``GET /api/ws``) reaches hypercorn; this
ASGI wrapper answers it with the same rules through the ordinary ASGI path: slower per
delivery, but the same frames, codes and limits. Everything else goes to the wrapped app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import trio

from loop_server.bearer import CHALLENGE
from loop_server.events import EventsHub, Subscription, encode_hello, encode_replay_truncated
from loop_server.origin_policy import ANY_ORIGIN, Headers, OriginPolicy
from loop_server.serving._events_endpoint import EventsEndpoint
from loop_server.serving._events_protocol import parse_events_query, parse_subscribe
from loop_server.serving._request_head import valid_websocket_key
from loop_server.serving._rfc6455 import CLOSE_MESSAGE_TOO_BIG

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TEXT_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"x-content-type-options", b"nosniff"),
]
# gorilla's refusal of a request that is not a valid upgrade says which version it speaks.
_VERSION_HEADER = (b"sec-websocket-version", b"13")
# A body sent to a WebSocket route is read and dropped before the 405; past this much the
# connection is closed instead of read further.
_DRAIN_LIMIT = 1 << 20


class WebSocketFallback:
    """What both fast-path WebSocket routes need when a request reaches hypercorn instead: the
    same refusals (403 from the origin policy, 401, 501, 400 for a plain GET) and, once the
    client's ``websocket.connect`` arrives, the route's own conversation (``_serve``).
    Everything else goes to ``app``."""

    not_configured = "not configured\n"

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        path: str,
        authorize: Callable[[list[tuple[bytes, bytes]], dict[str, str]], bool],
        policy: OriginPolicy,
    ) -> None:
        self._app = app
        self._path = path
        self._authorize = authorize
        self._policy = policy

    def _configured(self) -> bool:
        raise NotImplementedError

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The conversation after ``websocket.connect`` (accept included)."""
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket") and scope["path"] == self._path:
            if kind == "http" and scope["method"] == "OPTIONS":  # preflights are the gateway's
                await self._app(scope, receive, send)
                return
            verdict = self._policy.judge(scope["headers"], over_tcp=scope.get("server") is not None)
            if kind == "websocket":
                await self._websocket(scope, receive, send, verdict.refusal, verdict.cors)
            elif scope["method"] in ("GET", "HEAD"):  # a GET route answers HEAD too (§1.4)
                await self._http(scope, send, verdict.refusal, verdict.cors)
            else:
                await self._not_allowed(scope, receive, send, verdict.refusal, verdict.cors)
            return
        await self._app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        headers = [(bytes(name).lower(), bytes(value)) for name, value in scope["headers"]]
        return self._authorize(headers, _query(scope))

    def _refusal(self, scope: Scope, forbidden: str | None) -> tuple[int, str] | None:
        if forbidden is not None:
            return 403, forbidden + "\n"
        if not self._authorized(scope):
            return 401, "unauthorized\n"
        if not self._configured():
            return 501, self.not_configured
        return None

    async def _http(self, scope: Scope, send: Send, forbidden: str | None, cors: Headers) -> None:
        # Not an upgrade: the same answers as the listener gives.
        refusal = self._refusal(scope, forbidden)
        if refusal is not None:
            await _answer(send, *refusal, cors=cors)
        else:
            await _answer(send, 400, "Bad Request\n", [_VERSION_HEADER], cors)

    async def _not_allowed(
        self, scope: Scope, receive: Receive, send: Send, forbidden: str | None, cors: Headers
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
            await _answer(send, 403, forbidden + "\n", extra, cors)
        elif not self._authorized(scope):
            await _answer(send, 401, "unauthorized\n", extra, cors)
        else:
            allow = [(b"allow", b"GET, HEAD"), *extra]
            await _answer(send, 405, "Method Not Allowed\n", allow, cors)

    async def _websocket(
        self, scope: Scope, receive: Receive, send: Send, forbidden: str | None, cors: Headers
    ) -> None:
        refusal = self._refusal(scope, forbidden)
        extra: list[tuple[bytes, bytes]] = []
        if refusal is None and not valid_websocket_key(_header(scope, b"sec-websocket-key")):
            # hypercorn accepts any key; gorilla, and the listener, refuse it.
            refusal, extra = (400, "Bad Request\n"), [_VERSION_HEADER]
        if refusal is not None:
            status, body = refusal
            if "websocket.http.response" in scope.get("extensions", {}):
                payload = body.encode()
                start = {"type": "websocket.http.response.start", "status": status}
                await send({**start, "headers": _headers(status, payload, extra, cors)})
                await send({"type": "websocket.http.response.body", "body": payload})
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        if (await receive())["type"] != "websocket.connect":
            return
        await self._serve(scope, receive, send)


class EventsFallback(WebSocketFallback):
    not_configured = "events not configured\n"

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        endpoint: EventsEndpoint,
        policy: OriginPolicy,
    ) -> None:
        super().__init__(app, endpoint.path, endpoint.authorize, policy)
        self._endpoint = endpoint

    def _configured(self) -> bool:
        return self._endpoint.hub is not None

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self._endpoint.hub
        assert hub is not None  # _configured said so
        request = parse_events_query(_query(scope))
        subscription = hub.register(request.channels, since=request.since, epoch=request.epoch)
        try:
            await send({"type": "websocket.accept"})
            if request.hello:
                hello = encode_hello(hub.epoch, subscription.start_seq)
                await send({"type": "websocket.send", "text": hello.decode()})
            if subscription.replay_truncated:
                notice = encode_replay_truncated(hub.epoch, subscription.start_seq)
                await send({"type": "websocket.send", "text": notice.decode()})
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reader, hub, subscription, receive, nursery.cancel_scope)
                await _writer(subscription, send)
                nursery.cancel_scope.cancel()
        finally:
            hub.unregister(subscription)

    async def _reader(
        self, hub: EventsHub, subscription: Subscription, receive: Receive, scope: trio.CancelScope
    ) -> None:
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                # Gone: stop the writer too.
                scope.cancel()
                return
            payload = message.get("bytes") or (message.get("text") or "").encode()
            if len(payload) > self._endpoint.max_message_size:
                subscription.close(CLOSE_MESSAGE_TOO_BIG, "message too big")
                return
            is_subscribe, channels = parse_subscribe(payload)
            if is_subscribe:
                hub.set_channels(subscription, channels)


async def _writer(subscription: Subscription, send: Send) -> None:
    while True:
        try:
            events = await subscription.receive_batch()
        except trio.EndOfChannel:
            break
        for event in events:
            await send({"type": "websocket.send", "text": event.payload.decode()})
    code = subscription.close_code
    await send({"type": "websocket.close", "code": code, "reason": subscription.close_reason})


def _headers(
    status: int,
    payload: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    cors: Headers = ANY_ORIGIN,
) -> list[tuple[bytes, bytes]]:
    challenge = [CHALLENGE] if status == 401 else []
    length = (b"content-length", str(len(payload)).encode())
    return [*_TEXT_HEADERS, *cors, *challenge, *(extra or ()), length]


async def _answer(
    send: Send,
    status: int,
    body: str,
    extra: list[tuple[bytes, bytes]] | None = None,
    cors: Headers = ANY_ORIGIN,
) -> None:
    payload = body.encode()
    start = {"type": "http.response.start", "status": status}
    await send({**start, "headers": _headers(status, payload, extra, cors)})
    await send({"type": "http.response.body", "body": payload})


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if bytes(key).lower() == name:
            return bytes(value)
    return b""


def _query(scope: Scope) -> dict[str, str]:
    query: dict[str, str] = {}
    raw = bytes(scope.get("query_string", b"")).decode("latin-1")
    for key, value in parse_qsl(raw, keep_blank_values=True):
        query.setdefault(key, value)
    return query
