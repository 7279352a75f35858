"""The console behind a reverse proxy at a sub-path (``/loop/``): the page, REST, the events
socket and a terminal all go through the proxy, with relative URLs only. Real Chromium, a real
``loop-server serve``, real containers. Rules: see this directory's conftest."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.browser.conftest import BrowserPage
from tests.browser.console import console_steps as steps
from tests.browser.console.conftest import TOKEN, Console, Containers, shot
from tests.browser.console.subpath_proxy import OUTSIDE, SubPathProxy

pytestmark = pytest.mark.docker


async def test_console_under_a_sub_path(
    docker_console: tuple[Console, Containers], page: BrowserPage, nursery: trio.Nursery
) -> None:
    console, containers = docker_console
    proxy = SubPathProxy(console.port)
    await nursery.start(proxy.run)
    with trio.fail_after(180):
        await page.run(steps.open_console, f"http://127.0.0.1:{proxy.port}/loop/#token={TOKEN}")
        channel_id = await page.run(steps.create_channel, "behind-a-proxy")
        containers.also_remove(f"loop-channel={channel_id}")

        def use(p: Any) -> None:
            steps.send(p, "Through the proxy")
            steps.wait_for_message(p, "agent", "Through the proxy")
            steps.open_view(p, "Terminal")
            p.get_by_role("button", name="+ Shell").click()
            steps.type_in_terminal(p, "echo hi\n")
            steps.wait_for_terminal_line(p, "hi")
            shot(p, "subpath-terminal")

        await page.run(use)
    targets = [t.split(b"?")[0] for t in proxy.rewritten]
    assert not [t for t in targets if t.startswith(OUTSIDE)], targets
    for expected in (b"/", b"/console/app.js", b"/api/channels", b"/api/ws", b"/api/ws/terminal"):
        assert expected in targets, (expected, targets)
