"""The browser fixtures themselves: Chromium runs pages, and the server keeps serving meanwhile."""

from __future__ import annotations

import httpx
import pytest
import trio

from loop_server.runtime import ServerHandle
from tests.browser.conftest import Browser, BrowserPage, OtherOrigin
from tests.conftest import create_channel

pytestmark = pytest.mark.browser


def test_the_browser_is_chromium(browser: Browser) -> None:
    assert browser.version.split(".")[0].isdigit(), browser.version


async def test_a_page_runs_its_script(page: BrowserPage, other_origin: OtherOrigin) -> None:
    url = other_origin.serve(
        "/", "<title>t</title><script>document.title = 'ran ' + (6 * 7);</script>"
    )
    with trio.fail_after(60):
        await page.goto(url)
        assert await page.run(lambda p: p.title()) == "ran 42"


async def test_a_page_of_the_servers_own_origin_reads_the_api(
    page: BrowserPage, server: ServerHandle, client: httpx.AsyncClient
) -> None:
    channel_id = await create_channel(client, "from-the-browser")
    with trio.fail_after(60):
        await page.goto(server.url + "/api/health")
        answer = await page.evaluate(
            "async () => { const r = await fetch('/api/channels');"
            " return {status: r.status, body: await r.json()}; }"
        )
    assert answer["status"] == 200
    assert channel_id in [c["channel_id"] for c in answer["body"]]
