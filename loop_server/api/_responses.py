"""Quart responses in upstream's shapes: Go-encoded JSON and ``http.Error`` text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from quart import Response, request

from loop_server.api._wire import BodyError, FieldKind, decode_body, go_json
from loop_server.plain_text import CONTENT_TYPE


class ApiError(Exception):
    """Answer the request with ``status`` and the plain-text ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(value: Any, status: int = 200) -> Response:
    return Response(go_json(value), status=status, content_type="application/json")


def text_response(message: str, status: int) -> Response:
    response = Response(message + "\n", status=status, content_type=CONTENT_TYPE)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def empty_response(status: int) -> Response:
    """No body, so no ``Content-Type`` (Quart would claim ``text/html``; Go's handlers only write
    the status), and a ``204`` has no ``Content-Length`` either (RFC 9110 §8.6)."""
    response = Response(b"", status=status)
    del response.headers["Content-Type"]
    if status == 204:
        del response.headers["Content-Length"]
    return response


async def read_body(schema: Mapping[str, FieldKind] | None) -> dict[str, Any]:
    """Decode the request body like upstream (``400 invalid request body`` when it can't be)."""
    assert schema is not None, "the route declares no body"
    raw = await request.get_data(as_text=False)
    assert isinstance(raw, bytes)
    try:
        return decode_body(raw, schema)
    except BodyError as err:
        raise ApiError(400, "invalid request body") from err


T = TypeVar("T")


def need(value: T | None, message: str, status: int = 501) -> T:
    """Upstream's "collaborator not configured" check: the collaborator, or the error."""
    if value is None:
        raise ApiError(status, message)
    return value
