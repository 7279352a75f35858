"""What a person does in the console, as Playwright steps. Each function runs on the browser
thread (``await page.run(step, ...)``) and waits, under ``WAIT_MS``, for what it should see."""

from __future__ import annotations

from typing import Any

from tests.browser.console.conftest import WAIT_MS

Page = Any  # playwright.sync_api.Page


def open_console(page: Page, url: str) -> None:
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.wait_for_selector(".connection.state-live")


def create_channel(page: Page, name_or_dir: str) -> str:
    """Create a channel in the sidebar form; the id of the channel the console then opens."""
    field = page.get_by_label("New channel: a name, or a project directory")
    field.fill(name_or_dir)
    page.get_by_role("button", name="Create channel").click()
    # The form is cleared once the new channel is listed and open.
    page.wait_for_function("() => document.querySelector('.channel-create input').value === ''")
    # Attached, not visible: on a phone the channel drawer closes once a channel is open.
    page.wait_for_selector(".channel-row.current", state="attached")
    page.wait_for_selector(".view-tab[aria-selected=true]")
    return str(
        page.eval_on_selector(".channel-row.current .channel-link", "e => e.dataset.channelId")
    )


def send(page: Page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('.composer textarea').value === ''")


def wait_for_message(page: Page, kind: str, text: str) -> None:
    """A stored message of ``kind`` ("user" or "agent") containing ``text`` in the history."""
    page.locator(f".messages .message-{kind} .content", has_text=text).first.wait_for()


def message_texts(page: Page, kind: str = "") -> list[str]:
    """The history's texts, oldest first; only the user's or the agent's with ``kind``."""
    selector = f".messages .message{f'-{kind}' if kind else ''} .content"
    return list(page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)"))


def open_view(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()
    page.wait_for_selector(f"#tab-{name.lower()}[aria-selected=true]")


def terminal_lines(page: Page) -> list[str]:
    return list(
        page.eval_on_selector_all(
            ".term-stage .xterm-rows > div", "rows => rows.map(r => r.textContent.trimEnd())"
        )
    )


def wait_for_terminal_line(page: Page, line: str) -> None:
    """A row of the current terminal that reads exactly ``line`` (the output, not the command
    that was typed)."""
    page.wait_for_function(
        "line => Array.from(document.querySelectorAll('.term-stage .xterm-rows > div'))"
        ".some(r => r.textContent.trim() === line)",
        arg=line,
    )


def type_in_terminal(page: Page, text: str) -> None:
    page.locator(".term-stage .xterm").click()
    page.keyboard.type(text)
