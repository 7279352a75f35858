"""The outermost ASGI layer: what every route shares and no route should repeat.

The origin policy (which browsers may call us, and the CORS headers of every answer and
``OPTIONS`` preflight: ``loop_server.origin_policy``), Go ``ServeMux`` path cleaning (§1.4),
who is calling (the owner's optional bearer token, A.2, or an agent's scoped token and then its
channel scope, docs/mcp.md) and the request-body limit (A.2). It runs before routing, so it is
pure ASGI rather than Quart hooks.
"""

from __future__ import annotations

import posixpath
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, quote

import trio

from loop_server.access import (
    CALLER,
    VIA_AGENT_SOCKET,
    AgentTokens,
    bearer_token,
    identify,
    token_matches,
)
from loop_server.api._lean import LeanRequest, LeanRoutes, send_answer
from loop_server.api._scope import Request, ScopeGuard
from loop_server.bearer import challenge
from loop_server.origin_policy import ANY_ORIGIN, OriginPolicy
from loop_server.plain_text import TEXT_HEADERS
from loop_server.websocket_close import POLICY_VIOLATION

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/api/health", "/"})
# The web console's page and assets: static files without data, loaded before the page can
# send the token (a browser navigation cannot carry an Authorization header).
OPEN_PREFIXES = ("/console/",)
CLOSE = (b"connection", b"close")


def is_open(path: str) -> bool:
    """Whether ``path`` is served without the token."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def clean_path(path: str) -> str:
    """Go's ``path.Clean`` as ServeMux applies it, keeping a trailing slash."""
    if path == "" or path[0] != "/":
        path = "/" + path
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")  # normpath keeps a leading "//"; Go does not
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def location(scope: Scope, cleaned: str) -> bytes:
    """The redirect target for ``cleaned``: the path escaped as Go's ``url.URL`` escapes one
    (``scope["path"]`` is decoded, so a ``%3F`` in a segment must not come back as a query, nor
    a ``%0A`` as a line break) and the query exactly as the client sent it."""
    target = quote(cleaned, safe="/$&+,:;=@").encode("ascii")
    query: bytes = scope.get("query_string", b"")
    return target + b"?" + query if query else target


def token_given(
    token: str, headers: Iterable[tuple[bytes, bytes]], query_token: str | None
) -> bool:
    """Whether the bearer header, or else ``query_token``, carries ``token`` (none set: yes)."""
    if not token:
        return True
    if token_matches(token, bearer_token(headers)):
        return True
    return query_token is not None and token_matches(token, query_token.encode("utf-8"))


def authorized(
    token: str, headers: Iterable[tuple[bytes, bytes]], query: bytes, *, allow_query: bool
) -> bool:
    """Whether a request carries the token. WebSocket clients that cannot set headers may pass
    ``?token=``; plain HTTP must use the header (query strings end up in logs)."""
    query_token = None
    if allow_query:
        values = parse_qs(query.decode("latin-1")).get("token")
        query_token = values[-1] if values else None
    return token_given(token, headers, query_token)


def events_authorizer(token: str) -> Callable[[list[tuple[bytes, bytes]], dict[str, str]], bool]:
    """The token check for the events socket's own HTTP handshake (``serving`` layer)."""

    def authorize(headers: list[tuple[bytes, bytes]], query: dict[str, str]) -> bool:
        return token_given(token, headers, query.get("token"))

    return authorize


async def send_text(
    send: Send,
    status: int,
    text: str,
    extra: Iterable[tuple[bytes, bytes]] = (),
    cors: Iterable[tuple[bytes, bytes]] = ANY_ORIGIN,
) -> None:
    body = (text + "\n").encode("utf-8")
    length = (b"content-length", str(len(body)).encode())
    headers = [*TEXT_HEADERS, *cors, *challenge(status), *extra, length]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse_upgrade(scope: Scope, send: Send, status: int, body: bytes) -> None:
    if "websocket.http.response" in scope.get("extensions", {}):
        start = {"type": "websocket.http.response.start", "status": status}
        await send({**start, "headers": [*TEXT_HEADERS, *challenge(status)]})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})


class _ClientGone(Exception):
    """The client disconnected before its request body was complete."""


class Gateway:
    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        max_body_bytes: int,
        policy: OriginPolicy,
        agents: AgentTokens | None = None,
        guard: ScopeGuard | None = None,
        lean: LeanRoutes | None = None,
    ) -> None:
        self._app = app
        self._lean = lean
        self._token = token
        self._max_body_bytes = max_body_bytes
        self._policy = policy
        self._agents = agents
        self._guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self._app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope.get("headers", [])
        verdict = self._policy.judge(headers, over_tcp=scope.get("server") is not None)
        cors = verdict.cors
        if self._declared_length(headers) > self._max_body_bytes:
            # Answer at once and close: the client may still be sending the body.
            if verdict.refusal is not None:
                await send_text(send, 403, verdict.refusal, [CLOSE], cors)
            else:
                await send_text(send, 413, "request body too large", [CLOSE], cors)
            return
        # Read the whole (bounded) body before anything answers. An answer given while the
        # client is still sending (404, 405, 401, an early 400) would otherwise leave a
        # keep-alive connection stuck: hypercorn stops reading, the client stops reading
        # until its body is out. The routes read the body from memory afterwards.
        try:
            body = await self._read_body(receive)
        except _ClientGone:
            return
        if body is None:
            await send_text(send, 413, "request body too large", [CLOSE], cors)
            return
        # After the body: a refused request is read and dropped, never half-read.
        if verdict.refusal is not None:
            await send_text(send, 403, verdict.refusal, cors=cors)
            return
        path: str = scope["path"]
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": list(cors)})
            await send({"type": "http.response.body", "body": b""})
            return
        cleaned = clean_path(path)
        if cleaned != path:
            await send_text(
                send, 301, "Moved Permanently", [(b"location", location(scope, cleaned))], cors
            )
            return
        if not is_open(path):
            caller = identify(
                self._token,
                self._agents,
                headers,
                via_agent_socket=bool(scope.get(VIA_AGENT_SOCKET)),
            )
            if caller is None:
                await send_text(send, 401, "unauthorized", cors=cors)
                return
            if caller.is_agent:
                request = Request(scope["method"], path, scope.get("query_string", b""), body)
                refusal = (
                    "forbidden: no scope check configured"
                    if self._guard is None
                    else await self._guard.refusal(caller.channel_id, request)
                )
                if refusal is not None:
                    await send_text(send, 403, refusal, cors=cors)
                    return
            scope[CALLER] = caller

        hot = self._lean.match(scope["method"], path) if self._lean is not None else None
        if hot is not None and self._lean is not None:
            # A hot route: its core answers directly, as its Quart view would (api/_lean.py).
            core, params = hot
            lean = LeanRequest(scope["method"], path, scope.get("query_string", b""), body, scope)
            await send_answer(send, await self._lean.answer(core, lean, params), cors)
            return

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the disconnect, as in ASGI

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *cors]
            # Shielded: quart-trio cancels its request nursery as soon as hypercorn reports the
            # disconnect that follows the last body chunk, and that cancellation landed inside
            # hypercorn's send just when it re-arms the connection's keep-alive task; an idle
            # keep-alive connection was then never closed, not after keep_alive_timeout and not
            # on shutdown (tests/hardening/test_shutdown.py). hypercorn shields its socket writes
            # itself, so this makes no send less cancellable. The lean path and the gateway's
            # own answers run in no such nursery and skip the shield's cost.
            with trio.CancelScope(shield=True):
                await send(message)

        await self._app(scope, replay, send_with_cors)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The request body, or None when it is larger than the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        verdict = self._policy.judge(
            scope.get("headers", []), over_tcp=scope.get("server") is not None
        )
        if verdict.refusal is not None:
            await _refuse_upgrade(scope, send, 403, (verdict.refusal + "\n").encode())
            return
        if not authorized(
            self._token, scope.get("headers", []), scope.get("query_string", b""), allow_query=True
        ):
            await _refuse_upgrade(scope, send, 401, b"unauthorized\n")
            return
        await self._app(scope, receive, send)

    @staticmethod
    def _declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int:
        for name, value in headers:
            if name.lower() == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0  # hypercorn rejects a malformed length itself
        return 0
