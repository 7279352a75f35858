"""The console's live view across a network failure while the server keeps running, and its
history paging. Real Chromium, a real ``loop-server serve`` (no Docker: slash commands post bot
messages without an agent run), the page reached through a proxy that can cut its WebSockets.
Rules: see this directory's conftest."""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio

from tests.browser.conftest import BrowserPage
from tests.browser.console import console_steps as steps
from tests.browser.console.conftest import TOKEN, Console
from tests.browser.console.subpath_proxy import SubPathProxy
from tests.events.events_helpers import connect_ws

DEADLINE = 120
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def post_commands(console: Console, channel_id: str, count: int) -> list[str]:
    """``count`` bot replies in the channel (``/status`` answers without an agent run, in the
    background); waits for their ``message.created`` and returns the channel's message ids,
    oldest first."""
    resource = f"/api/ws?channels={channel_id}&token={TOKEN}"
    async with (
        connect_ws(console.port, resource) as events,
        httpx.AsyncClient(base_url=console.base, headers=AUTH, timeout=30) as http,
    ):
        for _ in range(count):
            response = await http.post(
                "/api/commands", json={"channel_id": channel_id, "command": "status"}
            )
            assert response.status_code == 204, response.text
        created = 0
        while created < count:
            created += json.loads(await events.get_message())["type"] == "message.created"
        page = await http.get(f"/api/channels/{channel_id}/messages", params={"limit": 200})
    return [m["msg_id"] for m in reversed(page.json()["messages"])]


def shown_ids(p: Any) -> list[str]:
    return list(
        p.eval_on_selector_all(".messages .message", "els => els.map(e => e.dataset.msgId)")
    )


async def test_a_dropped_connection_replays_what_was_missed(
    console: Console, page: BrowserPage, nursery: trio.Nursery
) -> None:
    proxy = SubPathProxy(console.port)
    await nursery.start(proxy.run)
    with trio.fail_after(DEADLINE):
        await page.run(steps.open_console, f"http://127.0.0.1:{proxy.port}/loop/#token={TOKEN}")
        channel_id = await page.run(steps.create_channel, "flaky-network")
        await post_commands(console, channel_id, 3)
        await page.run(lambda p: p.locator(".messages .message").nth(2).wait_for())

        # The network fails; the server goes on, and more replies are posted meanwhile.
        proxy.refusing = True
        assert proxy.drop_sockets() >= 1
        await page.run(lambda p: p.locator(".connection.state-reconnecting").wait_for())
        expected = await post_commands(console, channel_id, 4)
        assert len(expected) == 7
        proxy.refusing = False

        def back(p: Any) -> list[str]:
            p.locator(".connection.state-live").wait_for()
            p.locator(".messages .message").nth(6).wait_for()
            return shown_ids(p)

        # Every message once, in order: the missed four came from the hub's replay (?since=).
        assert await page.run(back) == expected
        # And it was a replay, not a reload: the proxy saw a reconnect with since= and no
        # second history request.
        sockets = [t for t in proxy.rewritten if t.startswith(b"/api/ws?")]
        assert len(sockets) >= 2 and b"since=" in sockets[-1]
        history = [t for t in proxy.rewritten if b"/messages" in t]
        assert len(history) == 1, history


async def test_history_pages_back_when_scrolling_up(console: Console, page: BrowserPage) -> None:
    with trio.fail_after(DEADLINE):
        await page.run(steps.open_console, console.url)
        channel_id = await page.run(steps.create_channel, "long-history")
        expected = await post_commands(console, channel_id, 75)
        await page.run(lambda p: p.reload())
        await page.run(steps.open_console, await page.evaluate("() => location.href"))

        def scroll_back(p: Any) -> tuple[int, list[str]]:
            p.locator(".messages .message").nth(49).wait_for()
            first_page = len(shown_ids(p))
            p.locator(".scroller").evaluate("e => { e.scrollTop = 0; }")
            p.locator(".messages .message").nth(74).wait_for()
            p.locator(".older").wait_for(state="hidden")  # nothing older left
            return first_page, shown_ids(p)

        first_page, ids = await page.run(scroll_back)
        assert first_page == 50
        assert ids == expected
