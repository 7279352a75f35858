"""``GET /`` and ``GET /console/<file>``: the web console's page and assets.

They are not API routes (not in the OpenAPI document) and need no token: the files are the
same for everyone and hold no data; the page then calls the API with the token. Every URL the
page uses is relative, so the console also works under a reverse proxy's sub-path.
"""

from __future__ import annotations

from quart import Quart, Response, request

from loop_server.api._responses import text_response
from loop_server.console_assets import Asset, ConsoleAssets

# The page loads its own script and styles only, talks to its own origin only (REST and both
# WebSockets), and may not be framed (clickjacking). xterm.js sets inline styles.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
NOT_BUILT = (
    "the web console is not built into this installation (run `make console`); "
    "the API is served under /api/"
)


def register(app: Quart, assets: ConsoleAssets) -> None:
    async def index() -> Response:
        page = assets.index()
        if page is None:
            return text_response(NOT_BUILT, 404)
        return _answer(page)

    async def asset(name: str) -> Response:
        found = assets.asset(name)
        if found is None:
            return text_response("404 page not found", 404)
        return _answer(found)

    app.add_url_rule("/", "console_index", index, methods=["GET"])
    app.add_url_rule("/console/<path:name>", "console_asset", asset, methods=["GET"])


def _answer(asset: Asset) -> Response:
    if request.if_none_match.contains(asset.etag):
        response = Response(b"", status=304)
    else:
        response = Response(asset.body, status=200, content_type=asset.content_type)
    # Revalidate every time (a 304 costs one round trip): a new build must not meet a page or
    # script cached from the previous one.
    response.headers["Cache-Control"] = "no-cache"
    response.set_etag(asset.etag)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
