"""Hot routes answered without Quart's per-request machinery (issue 15).

Profiled on ``GET /api/health``, Quart's request context, werkzeug routing, ``Response`` objects
and its ASGI adapter cost about as much per request as everything else of ours together. A hot
route is therefore written once as a *core*: a function of a ``LeanRequest`` (method, path,
query, the body the gateway already read, the ASGI scope) returning an ``Answer`` (status,
headers, body bytes). The gateway answers the request with the core directly when the method
and path match; the same core is also registered as the Quart view (for the OpenAPI document,
``405``/``HEAD`` handling of the path and Quart's test client), so the two cannot drift.

Errors are mapped as the Quart app's error handlers map them (``api/app.py``): ``ApiError`` to
its status and text, the services' ``NotFound``/``Invalid`` to 404/400, anything else to a
logged 500 carrying the error's text.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

from quart import Quart, Response, request
from werkzeug.datastructures import MultiDict

from loop_server.api._responses import ApiError
from loop_server.api._routes import Route, route
from loop_server.api._wire import BodyError, FieldKind, decode_body, go_json
from loop_server.plain_text import CONTENT_TYPE_HEADER, NOSNIFF_HEADER
from loop_server.services.errors import Invalid, NotFound

log = logging.getLogger("loop_server.api.app")

Header = tuple[bytes, bytes]
_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete response; ``headers`` in the order Quart wrote them for the same answer."""

    status: int
    headers: tuple[Header, ...]
    body: bytes


def json_answer(value: Any, status: int = 200) -> Answer:
    return json_bytes_answer(go_json(value), status)


def json_bytes_answer(body: bytes, status: int = 200) -> Answer:
    """An answer with a body already encoded as ``go_json`` encodes it."""
    return Answer(status, (_JSON, (b"content-length", str(len(body)).encode())), body)


def text_answer(message: str, status: int) -> Answer:
    body = (message + "\n").encode("utf-8")
    return Answer(
        status,
        (CONTENT_TYPE_HEADER, (b"content-length", str(len(body)).encode()), NOSNIFF_HEADER),
        body,
    )


#: No body: no ``Content-Type`` and, for a 204, no ``Content-Length`` (RFC 9110 §8.6).
NO_CONTENT = Answer(204, (), b"")


class LeanRequest:
    """What a core reads of its request."""

    __slots__ = ("__dict__", "body", "method", "path", "query", "scope")

    def __init__(
        self, method: str, path: str, query: bytes, body: bytes, scope: Mapping[str, Any]
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.scope = scope

    @cached_property
    def args(self) -> MultiDict[str, str]:
        """The query parameters, parsed exactly as werkzeug parses ``request.args``."""
        return MultiDict(
            parse_qsl(self.query.decode(), keep_blank_values=True, errors="werkzeug.url_quote")
        )

    def json_body(self, schema: Mapping[str, FieldKind] | None) -> dict[str, Any]:
        """The body decoded like upstream (``400 invalid request body`` when it can't be)."""
        assert schema is not None, "the route declares no body"
        try:
            return decode_body(self.body, schema)
        except BodyError as err:
            raise ApiError(400, "invalid request body") from err


Core = Callable[..., Awaitable[Answer]]  # (LeanRequest, *path parameters) -> Answer


class LeanRoutes:
    """The table of hot routes the gateway consults before handing a request to Quart."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Core] = {}
        # Per method: (segments with None for a parameter, core); a parameter is one non-empty
        # segment, as werkzeug's default converter matches it.
        self._patterns: dict[str, list[tuple[tuple[str | None, ...], Core]]] = {}

    def add(self, spec: Route, core: Core) -> None:
        if "<" not in spec.path:
            self._exact[(spec.method, spec.path)] = core
            return
        segments = tuple(None if part.startswith("<") else part for part in spec.path.split("/"))
        self._patterns.setdefault(spec.method, []).append((segments, core))

    def match(self, method: str, path: str) -> tuple[Core, tuple[str, ...]] | None:
        core = self._exact.get((method, path))
        if core is not None:
            return core, ()
        patterns = self._patterns.get(method)
        if not patterns:
            return None
        parts = path.split("/")
        for segments, core in patterns:
            if len(segments) != len(parts):
                continue
            params: list[str] = []
            for want, part in zip(segments, parts, strict=True):
                if want is None:
                    if not part:
                        break
                    params.append(part)
                elif want != part:
                    break
            else:
                return core, tuple(params)
        return None

    async def answer(self, core: Core, lean: LeanRequest, params: tuple[str, ...]) -> Answer:
        """Run ``core``, its errors answered as the Quart app's error handlers answer them."""
        try:
            return await core(lean, *params)
        except ApiError as err:
            return text_answer(err.message, err.status)
        except NotFound as err:
            return text_answer(str(err), 404)
        except Invalid as err:
            return text_answer(str(err), 400)
        except Exception as err:
            log.exception("request failed")
            return text_answer(str(err) or type(err).__name__, 500)


def hot_route(app: Quart, spec: Route, lean: LeanRoutes | None) -> Callable[[Core], Core]:
    """Register ``core`` as ``spec``'s Quart view and, with ``lean``, as its lean path."""

    def decorate(core: Core) -> Core:
        async def view(**params: str) -> Response:
            # Quart passes the rule's parameters by name, in the rule's order.
            body = await request.get_data(as_text=False)
            assert isinstance(body, bytes)
            lean_request = LeanRequest(
                request.method, request.path, request.query_string, body, request.scope
            )
            return to_response(await core(lean_request, *params.values()))

        view.__name__ = core.__name__
        route(app, spec)(view)
        if lean is not None:
            lean.add(spec, core)
        return core

    return decorate


def to_response(answer: Answer) -> Response:
    """The Quart ``Response`` writing the same status, headers and body as ``answer``."""
    response = Response(answer.body, status=answer.status)
    headers = response.headers
    headers.clear()  # Quart's defaults (text/html, its own length) are replaced by the answer's
    for name, value in answer.headers:
        headers.add(name.decode("latin-1"), value.decode("latin-1"))
    return response


async def send_answer(
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    answer: Answer,
    cors: tuple[Header, ...] | list[Header],
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [*answer.headers, *cors],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})
