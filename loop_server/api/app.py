"""Builds the ASGI application: Quart routes behind the gateway layer."""

from __future__ import annotations

import logging
from typing import cast

from quart import Response
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.exceptions import NotFound as RouteNotFound

from loop_server.access import AgentTokens
from loop_server.api import (
    channels,
    commands,
    console,
    memory,
    messages,
    misc,
    openapi,
    tasks,
    threads,
)
from loop_server.api._gateway import ASGIApp, Gateway
from loop_server.api._lean import LeanRoutes
from loop_server.api._responses import ApiError, text_response
from loop_server.api._scope import ScopeGuard
from loop_server.api.deps import ApiDeps
from loop_server.origin_policy import OriginPolicy
from loop_server.services.errors import Invalid, NotFound

log = logging.getLogger(__name__)


def create_quart_app(deps: ApiDeps, lean: LeanRoutes | None = None) -> QuartTrio:
    """The Quart app; with ``lean``, the hot routes' cores are also entered there for the
    gateway to answer without Quart (``api/_lean.py``)."""
    # No Quart static folder: the API routes, plus the console's page and assets when given.
    app = QuartTrio("loop_server", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = deps.max_body_bytes
    # Quart would otherwise answer OPTIONS itself; the gateway owns preflights.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    @app.errorhandler(ApiError)
    async def api_error(err: ApiError) -> Response:
        return text_response(err.message, err.status)

    @app.errorhandler(NotFound)
    async def not_found(err: NotFound) -> Response:
        # Upstream answers these with 500; a missing thing is the caller's 404 (decisions.md).
        return text_response(str(err), 404)

    @app.errorhandler(Invalid)
    async def invalid(err: Invalid) -> Response:
        return text_response(str(err), 400)

    @app.errorhandler(HTTPException)
    async def http_error(err: HTTPException) -> Response:
        if isinstance(err, RouteNotFound):
            return text_response("404 page not found", 404)
        if isinstance(err, MethodNotAllowed):
            response = text_response("Method Not Allowed", 405)
            response.headers["Allow"] = ", ".join(sorted(err.valid_methods or ()))
            return response
        if isinstance(err, RequestEntityTooLarge):
            return text_response("request body too large", 413)
        status = err.code or 500
        return text_response(err.description or err.name, status)

    @app.errorhandler(Exception)
    async def internal_error(err: Exception) -> Response:
        # Upstream echoes err.Error() with 500; keep the traceback in our log.
        log.exception("request failed")
        return text_response(str(err) or type(err).__name__, 500)

    # In this order: the OpenAPI document lists the routes as they were registered.
    channels.register(app, deps, lean)
    messages.register(app, deps, lean)
    threads.register(app, deps)
    tasks.register(app, deps, lean)
    misc.register(app, deps, lean)
    memory.register(app, deps)
    commands.register(app, deps, lean)
    openapi.register(app, deps)
    if deps.console is not None:
        console.register(app, deps.console)
    return app


def create_app(
    deps: ApiDeps,
    *,
    token: str,
    policy: OriginPolicy | None = None,
    agents: AgentTokens | None = None,
) -> ASGIApp:
    """``policy`` None: the default rules (loopback bind, nothing else allowed). ``agents``: the
    scoped agent tokens the API accepts besides ``token`` (docs/mcp.md)."""
    lean = LeanRoutes()
    app = cast(ASGIApp, create_quart_app(deps, lean))
    guard = ScopeGuard(deps.store, deps.scheduler, loop_dir=deps.loop_dir)
    return Gateway(
        app,
        token=token,
        max_body_bytes=deps.max_body_bytes,
        policy=policy or OriginPolicy(),
        agents=agents,
        guard=guard,
        lean=lean,
    )
