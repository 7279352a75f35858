"""Route definitions: one value per REST route that both the handler and the OpenAPI document
read, so the document cannot drift from what the handlers accept (issue 8).

A handler registered with ``@route(app, SPEC)`` decodes its body with ``read_body(SPEC.body)``;
``openapi.build_document`` walks the same specs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from quart import Quart

from loop_server.api._wire import FieldKind

F = TypeVar("F", bound=Callable[..., Any])
Kind = Literal["json", "text", "empty"]
REGISTRY_KEY = "loop_server.routes"


@dataclass(frozen=True, slots=True)
class Reply:
    """One documented answer: its content kind, what it means, and for JSON its schema."""

    kind: Kind
    description: str
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # a Quart rule: "/api/tasks/<task_id>"
    summary: str
    replies: Mapping[int, Reply]
    body: Mapping[str, FieldKind] | None = None
    required: tuple[str, ...] = ()  # body fields the handler insists on (400 without them)
    query: Mapping[str, Literal["string", "integer"]] = field(default_factory=dict)
    body_required: bool = True  # an empty body is a 400 (Go's decoder reads EOF as an error)


def route(app: Quart, spec: Route) -> Callable[[F], F]:
    """Register ``spec`` with the app (for the document) and its handler with Quart."""
    routes: list[Route] = app.extensions.setdefault(REGISTRY_KEY, [])
    routes.append(spec)

    def decorate(handler: F) -> F:
        app.add_url_rule(spec.path, view_func=handler, methods=[spec.method])
        return handler

    return decorate


def registered_routes(app: Quart) -> list[Route]:
    return list(app.extensions.get(REGISTRY_KEY, []))


# Replies most routes share.
def text(description: str) -> Reply:
    return Reply("text", description)


NOT_CONFIGURED = text("the collaborator this route needs is not configured")
BAD_REQUEST = text("invalid request (the text says what is wrong)")
SERVER_ERROR = text("the operation failed (the text is the error)")
NO_CONTENT = Reply("empty", "done")
STRING = {"type": "string"}
INTEGER = {"type": "integer", "format": "int64"}
BOOLEAN = {"type": "boolean"}


def json_object(properties: Mapping[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": [name for name in properties if name not in optional],
    }


#: The query of every cursor-paged listing (``_params.page_params`` reads it).
PAGE_QUERY: Mapping[str, Literal["string", "integer"]] = {"limit": "integer", "cursor": "integer"}


def page_reply(key: str, item: Mapping[str, Any], description: str) -> Reply:
    """A page of ``item`` under ``key`` with upstream's ``next_cursor`` (null on the last page)."""
    return Reply(
        "json",
        description,
        json_object(
            {
                key: {"type": "array", "items": item},
                "next_cursor": {"type": "integer", "nullable": True},
            }
        ),
    )
