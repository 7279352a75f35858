"""``GET /api/openapi.json``: the OpenAPI 3 document, built from the registered route specs."""

from __future__ import annotations

import re
from typing import Any

from quart import Quart, Response

from loop_server import __version__
from loop_server.api._responses import json_response
from loop_server.api._routes import Reply, Route, json_object, registered_routes, route
from loop_server.api._wire import FieldKind
from loop_server.api.deps import ApiDeps

_PARAM = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")
_FIELD_SCHEMAS: dict[FieldKind, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer", "format": "int64"},
    "bool": {"type": "boolean"},
    "str_list": {"type": "array", "items": {"type": "string"}},
}

OPENAPI = Route(
    "GET",
    "/api/openapi.json",
    "This document",
    replies={200: Reply("json", "the OpenAPI 3 document", {"type": "object"})},
)


def build_document(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        path = _PARAM.sub(r"{\1}", spec.path)
        paths.setdefault(path, {})[spec.method.lower()] = _operation(spec)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "loop-server",
            "version": __version__,
            "description": "The Loop API (REST). The events (/api/ws) and terminal "
            "(/api/ws/terminal) WebSockets are described in the README. With a token "
            "configured every route but /api/health needs `Authorization: Bearer <token>`.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(spec: Route) -> dict[str, Any]:
    bare_path = _PARAM.sub(r"\1", spec.path).strip("/")
    operation_id = re.sub(r"[^a-z0-9]+", "_", f"{spec.method.lower()}_{bare_path}")
    operation: dict[str, Any] = {
        "summary": spec.summary,
        "operationId": operation_id,
        "responses": {str(status): _response(reply) for status, reply in spec.replies.items()},
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(spec.path)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": kind}}
        for name, kind in spec.query.items()
    ]
    if parameters:
        operation["parameters"] = parameters
    if spec.body is not None:
        schema = json_object(
            {name: _FIELD_SCHEMAS[kind] for name, kind in spec.body.items()},
            optional=tuple(name for name in spec.body if name not in spec.required),
        )
        operation["requestBody"] = {
            "required": spec.body_required,
            "content": {"application/json": {"schema": schema}},
        }
    return operation


def _response(reply: Reply) -> dict[str, Any]:
    if reply.kind == "empty":
        return {"description": reply.description}
    if reply.kind == "text":
        return {
            "description": reply.description,
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    return {
        "description": reply.description,
        "content": {"application/json": {"schema": dict(reply.schema or {})}},
    }


def register(app: Quart, deps: ApiDeps) -> None:
    document: dict[str, Any] = {}

    @route(app, OPENAPI)
    async def openapi() -> Response:
        if not document:  # every module has registered by the first request
            document.update(build_document(registered_routes(app)))
        return json_response(document)
