"""The console's looks and reach: a phone-sized screen, dark mode, keyboard use, a label on
every control, and the token prompt. Real Chromium against a real ``loop-server serve`` (no
Docker needed: no agent runs here). Rules: see this directory's conftest.
"""

from __future__ import annotations

from typing import Any

import trio

from tests.browser.conftest import Browser, BrowserPage
from tests.browser.console import console_steps as steps
from tests.browser.console.conftest import TOKEN, Console, new_page, shot

DEADLINE = 120

# Every visible control's accessible name, as a screen reader finds it: aria-label,
# aria-labelledby, a <label for>, a wrapping <label>, or its own text. Returns the unnamed.
UNNAMED_CONTROLS = """() => {
  const named = (el) =>
    (el.getAttribute('aria-label') || '').trim() ||
    (el.getAttribute('aria-labelledby') || '').trim() ||
    (el.id && document.querySelector(`label[for="${el.id}"]`)) ||
    el.closest('label') ||
    (el.tagName === 'BUTTON' && el.textContent.trim());
  return Array.from(document.querySelectorAll('button, input, select, textarea'))
    .filter((el) => el.offsetParent !== null && !named(el))
    .map((el) => el.outerHTML.slice(0, 120));
}"""

VIEWS = ["Chat", "Tasks", "Memory", "Terminal"]


async def test_every_view_labels_its_controls(console: Console, page: BrowserPage) -> None:
    with trio.fail_after(DEADLINE):
        await page.run(steps.open_console, console.url)
        assert await page.evaluate(UNNAMED_CONTROLS) == []
        await page.run(steps.create_channel, "labels")
        for view in VIEWS:
            await page.run(steps.open_view, view)
            assert await page.evaluate(UNNAMED_CONTROLS) == [], view


async def test_search_filters_the_channel_list(console: Console, page: BrowserPage) -> None:
    with trio.fail_after(DEADLINE):
        await page.run(steps.open_console, console.url)
        for name in ("alpha-api", "beta-web", "alpha-docs"):
            await page.run(steps.create_channel, name)

        def search(p: Any, query: str) -> list[str]:
            p.get_by_label("Search channels").fill(query)
            p.wait_for_function(
                "n => document.querySelectorAll('.channel-link').length === n",
                arg=3 if not query else 2 if query == "ALPHA" else 0,
            )
            return list(
                p.eval_on_selector_all(".channel-name", "els => els.map(e => e.textContent)")
            )

        assert await page.run(search, "ALPHA") == ["# alpha-api", "# alpha-docs"]
        assert await page.run(search, "zzz") == []
        assert await page.run(lambda p: p.get_by_text("No channel matches.").is_visible())
        assert len(await page.run(search, "")) == 3


async def test_keyboard_only(console: Console, page: BrowserPage) -> None:
    with trio.fail_after(DEADLINE):
        await page.run(steps.open_console, console.url)

        def by_keyboard(p: Any) -> str:
            # The skip link comes first, then the channel form is reachable by Tab.
            p.keyboard.press("Tab")
            assert p.evaluate("document.activeElement.textContent") == "Skip to content"
            p.get_by_label("New channel: a name, or a project directory").focus()
            p.keyboard.type("keys")
            p.keyboard.press("Enter")
            p.locator(".channel-row.current").wait_for()
            # Arrow keys move between the view tabs.
            p.get_by_role("tab", name="Chat").focus()
            p.keyboard.press("ArrowRight")
            p.wait_for_selector("#tab-tasks[aria-selected=true]")
            p.keyboard.press("ArrowLeft")
            p.wait_for_selector("#tab-chat[aria-selected=true]")
            # Slash commands are offered while typing "/".
            p.get_by_label("Message", exact=True).focus()
            p.keyboard.type("/ta")
            p.locator(".slash-hints").wait_for()
            return str(p.eval_on_selector(".slash-hints", "e => e.textContent"))

        hints = await page.run(by_keyboard)
        assert "/tasks" in hints and "/task" in hints and "/status" not in hints


async def test_phone_sized_and_dark(console: Console, browser: Browser) -> None:
    phone, close = await new_page(
        browser,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        color_scheme="dark",
        reduced_motion="reduce",  # no drawer animation half-way through a screenshot
    )
    try:
        with trio.fail_after(DEADLINE):
            await phone.run(steps.open_console, console.url)

            def use(p: Any) -> dict[str, Any]:
                # The channel list is a drawer behind the menu button on a phone.
                assert not p.get_by_label("Search channels").is_visible()
                p.get_by_role("button", name="Show channels").click()
                p.get_by_label("Search channels").wait_for()
                shot(p, "phone-channels-dark")
                steps.create_channel(p, "phone")
                p.get_by_label("Search channels").wait_for(state="hidden")
                steps.send(p, "/status")
                p.locator(".messages .message-agent").first.wait_for()
                shot(p, "phone-chat-dark")
                return dict(
                    p.evaluate(
                        """() => ({
                          overflow: document.documentElement.scrollWidth - window.innerWidth,
                          background: getComputedStyle(document.body).backgroundColor,
                        })"""
                    )
                )

            looks = await phone.run(use)
            assert looks["overflow"] <= 0  # nothing wider than the screen
            assert looks["background"] == "rgb(11, 13, 19)"  # the dark palette
    finally:
        await phone.thread.call(close)


async def test_light_mode_by_default(console: Console, browser: Browser) -> None:
    light, close = await new_page(browser, color_scheme="light")
    try:
        with trio.fail_after(DEADLINE):
            await light.run(steps.open_console, console.url)
            background = await light.evaluate(
                "() => getComputedStyle(document.body).backgroundColor"
            )
            assert background == "rgb(246, 247, 251)"
    finally:
        await light.thread.call(close)


async def test_asks_for_the_token_when_the_url_has_none(
    console: Console, page: BrowserPage
) -> None:
    with trio.fail_after(DEADLINE):

        def without_token(p: Any) -> None:
            p.set_default_timeout(steps.WAIT_MS)
            p.goto(console.base + "/")
            p.get_by_label("API token").fill("wrong")
            p.get_by_role("button", name="Open the console").click()
            p.get_by_text("The token was not accepted").wait_for()
            p.get_by_label("API token").fill(TOKEN)
            p.get_by_role("button", name="Open the console").click()
            p.wait_for_selector(".connection.state-live")

        await page.run(without_token)
        assert await page.evaluate("() => sessionStorage.getItem('loop.token')") == TOKEN
