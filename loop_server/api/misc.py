"""The README and health routes (SPEC §3.16, A.1)."""

from __future__ import annotations

from quart import Quart, Response

from loop_server.api._lean import Answer, LeanRequest, LeanRoutes, hot_route, json_answer
from loop_server.api._routes import STRING, Reply, Route, route
from loop_server.api.deps import ApiDeps
from loop_server.plain_text import CONTENT_TYPE

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


def register(app: Quart, deps: ApiDeps, lean: LeanRoutes | None = None) -> None:
    @route(app, README)
    async def readme() -> Response:
        return Response(deps.readme, status=200, content_type=CONTENT_TYPE)

    @hot_route(app, HEALTH, lean)
    async def health(req: LeanRequest) -> Answer:
        return json_answer({"status": "ok", **deps.health()})
