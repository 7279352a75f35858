"""The README and health routes (SPEC §3.16, A.1)."""

from __future__ import annotations

from quart import Quart, Response

from loop_server.api._responses import json_response
from loop_server.api._routes import STRING, Reply, Route, route
from loop_server.api.deps import ApiDeps

README = Route(
    "GET",
    "/api/readme",
    "The project README as text",
    replies={200: Reply("text", "README.md")},
)
HEALTH = Route(
    "GET",
    "/api/health",
    "Readiness, and the events hub's statistics",
    replies={200: Reply("json", "ready", {"type": "object", "properties": {"status": STRING}})},
)


def register(app: Quart, deps: ApiDeps) -> None:
    @route(app, README)
    async def readme() -> Response:
        return Response(deps.readme, status=200, content_type="text/plain; charset=utf-8")

    @route(app, HEALTH)
    async def health() -> Response:
        return json_response({"status": "ok", **deps.health()})
