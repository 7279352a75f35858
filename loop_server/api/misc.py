"""The README and health routes (SPEC §3.16, A.1)."""

from __future__ import annotations

from quart import Quart, Response

from loop_server.api._responses import json_response
from loop_server.api.deps import ApiDeps


def register(app: Quart, deps: ApiDeps) -> None:
    @app.get("/api/readme")
    async def readme() -> Response:
        return Response(deps.readme, status=200, content_type="text/plain; charset=utf-8")

    @app.get("/api/health")
    async def health() -> Response:
        return json_response({"status": "ok", **deps.health()})
