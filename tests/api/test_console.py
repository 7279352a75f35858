"""``GET /`` and ``/console/...``: the web console's files, served by the real server on
127.0.0.1 (port 0) with a token set, read with httpx. The files need no token (a browser's
navigation cannot send one) and hold no data; the API beside them still does. Rules: as in
tests/conftest.py (real server, absolute deadlines).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from loop_server.api import console as console_routes
from loop_server.api.app import create_quart_app
from loop_server.api.deps import ApiDeps
from loop_server.console_assets import ConsoleAssets
from loop_server.runtime import ServerHandle, run_server
from tests.conftest import make_config

TOKEN = "console-token"
DEADLINE = 20


@pytest.fixture
async def secured(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[ServerHandle]:
    with trio.fail_after(DEADLINE):
        handle: ServerHandle = await nursery.start(
            partial(run_server, make_config(tmp_path, token=TOKEN))
        )
    yield handle
    handle.shutdown()


@pytest.fixture
async def http(secured: ServerHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=secured.url, timeout=DEADLINE) as client:
        yield client


async def test_the_page_needs_no_token_the_api_does(http: httpx.AsyncClient) -> None:
    with trio.fail_after(DEADLINE):
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert '<div id="app"' in page.text
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-cache"
        assert (await http.get("/api/channels")).status_code == 401


async def test_every_asset_the_page_names_is_served_and_relative(
    http: httpx.AsyncClient,
) -> None:
    with trio.fail_after(DEADLINE):
        page = (await http.get("/")).text
        refs = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert refs, page
        # Relative only: behind a proxy at /some/prefix/ they resolve under the prefix.
        assert [r for r in refs if r.startswith(("/", "http:", "https:"))] == []
        types = {}
        for ref in refs:
            response = await http.get("/" + ref)
            assert response.status_code == 200, ref
            assert response.content, ref
            types[ref.rsplit(".", 1)[-1]] = response.headers["content-type"]
        assert types["js"] == "text/javascript; charset=utf-8"
        assert types["css"] == "text/css; charset=utf-8"
        script = (await http.get("/console/app.js")).text
        # The bundle addresses the API relatively too.
        assert '"api/channels' in script or "`api/channels" in script
        assert not re.search(r"""["'`]/api/""", script)


async def test_unknown_and_escaping_names_are_404(http: httpx.AsyncClient) -> None:
    with trio.fail_after(DEADLINE):
        for path in ("/console/nope.js", "/console/", "/console/app.js/x", "/console/index.html"):
            response = await http.get(path)
            assert response.status_code == 404, path
            assert response.text == "404 page not found\n", path
        # Encoded dot segments are decoded, then cleaned like any path (a redirect).
        for path in ("/console/..%2Findex.html", "/console/%2e%2e/%2e%2e/loop.db"):
            response = await http.get(path)
            assert response.status_code == 301, path
            assert not response.headers["location"].startswith("/console/"), path
        assert (await http.get("/loop.db")).status_code == 401  # not a console file: the API's


async def test_revalidation_and_methods(http: httpx.AsyncClient) -> None:
    with trio.fail_after(DEADLINE):
        first = await http.get("/console/app.css")
        etag = first.headers["etag"]
        again = await http.get("/console/app.css", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        changed = await http.get("/console/app.css", headers={"If-None-Match": '"other"'})
        assert changed.status_code == 200 and changed.content == first.content
        head = await http.head("/")
        assert head.status_code == 200 and head.content == b""
        posted = await http.post("/", content=b"x")
        assert posted.status_code == 405
        assert posted.headers["allow"] == "GET, HEAD"


async def test_an_installation_without_the_build_says_so() -> None:
    # The Quart app alone (a unit-level check): no files, a plain 404 that says what to do.
    deps = ApiDeps(scheduler=None, background=None, readme="", console=ConsoleAssets({}))  # type: ignore[arg-type]
    response = await create_quart_app(deps).test_client().get("/")
    assert response.status_code == 404
    assert (await response.get_data(as_text=True)) == console_routes.NOT_BUILT + "\n"
    assert not ConsoleAssets({}).built
    assert ConsoleAssets.from_package().built
