"""The web console end to end in a real headless Chromium, against a real ``loop-server serve``
process with real Docker containers (the agent is the test image's stream-json stub): a channel,
a streamed answer, slash commands, threads, tasks run now, memory, a terminal, a reload, and a
server killed mid-stream and started again. Rules: see this directory's conftest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.browser.conftest import BrowserPage
from tests.browser.console import console_steps as steps
from tests.browser.console.conftest import (
    TOKEN,
    Console,
    Containers,
    kill,
    running,
    shot,
)

pytestmark = pytest.mark.docker

DEADLINE = 180  # seconds for one test's browser steps, end to end


def api(console: Console) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=console.base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )


async def test_chat_streams_the_answer_and_history_survives_a_reload(
    docker_console: tuple[Console, Containers], page: BrowserPage
) -> None:
    console, containers = docker_console
    with trio.fail_after(DEADLINE):
        await page.run(steps.open_console, console.url)
        # The token left the address bar (it stays in this tab's sessionStorage only).
        assert "token" not in await page.evaluate("() => location.href")
        assert await page.evaluate("() => sessionStorage.getItem('loop.token')") == TOKEN
        channel_id = await page.run(steps.create_channel, "console-chat")
        containers.also_remove(f"loop-channel={channel_id}")

        def converse(p: Any) -> None:
            steps.send(p, "Plan the release STUB:TURNS=3 STUB:SLOW")
            steps.wait_for_message(p, "user", "Plan the release")
            # The agent's intermediate turns arrive live, before its answer is stored.
            p.locator(".live .streaming .content", has_text="Working on").wait_for()
            p.locator(".agent-status.running").wait_for()
            p.locator(".channel-row.current .badge-agent").wait_for()
            shot(p, "chat-streaming")
            steps.wait_for_message(p, "agent", "Done: ")
            p.locator(".live .streaming").wait_for(state="detached")
            p.locator(".agent-status.running").wait_for(state="detached")
            # A slash command: its reply is a bot message in the channel.
            steps.send(p, "/status")
            p.locator(".messages .message-agent").nth(1).wait_for()
            shot(p, "chat")

        await page.run(converse)
        before = await page.run(steps.message_texts)
        assert sum("Plan the release" in text for text in before) == 2  # question and answer

        await page.run(lambda p: p.reload())
        await page.run(steps.open_console, await page.evaluate("() => location.href"))
        await page.run(steps.wait_for_message, "agent", "Done: ")
        # The same messages, once each, in the same order, from the history over REST.
        assert await page.run(steps.message_texts) == before


async def test_a_failing_run_is_shown_plainly(
    docker_console: tuple[Console, Containers], page: BrowserPage
) -> None:
    console, containers = docker_console
    with trio.fail_after(DEADLINE):
        await page.run(steps.open_console, console.url)
        channel_id = await page.run(steps.create_channel, "console-fail")
        containers.also_remove(f"loop-channel={channel_id}")

        def fail(p: Any) -> str:
            steps.send(p, "Break STUB:FAIL")
            alert = p.locator(".agent-status.error")
            alert.wait_for()
            return str(alert.text_content())

        text = await page.run(fail)
        assert text.startswith("Agent failed: ")
        assert len(text) > len("Agent failed: ")


async def test_threads_open_create_and_delete(
    docker_console: tuple[Console, Containers], page: BrowserPage
) -> None:
    console, containers = docker_console
    with trio.fail_after(DEADLINE):
        await page.run(steps.open_console, console.url)
        channel_id = await page.run(steps.create_channel, "console-threads")
        containers.also_remove(f"loop-channel={channel_id}")

        def thread(p: Any) -> str:
            p.get_by_role("button", name="New thread").click()
            p.get_by_label("Thread name").fill("idea")
            p.get_by_role("button", name="Create thread").click()
            p.locator(".channel-heading h2", has_text="idea").wait_for()
            p.locator(".thread-list .channel-row.current").wait_for()
            return str(
                p.eval_on_selector(".channel-row.current .channel-link", "e => e.dataset.channelId")
            )

        thread_id = await page.run(thread)
        containers.also_remove(f"loop-channel={thread_id}")
        async with api(console) as client:
            listing = (await client.get("/api/channels")).json()
        (entry,) = [c for c in listing if c["channel_id"] == thread_id]
        assert entry["parent_id"] == channel_id

        def delete(p: Any) -> None:
            p.once("dialog", lambda dialog: dialog.accept())
            p.get_by_role("button", name="Delete thread idea").click()
            p.locator(".thread-list").wait_for(state="detached")

        await page.run(delete)
        async with api(console) as client:
            listing = (await client.get("/api/channels")).json()
        assert [c["channel_id"] for c in listing] == [channel_id]


async def test_tasks_create_run_now_and_history(
    docker_console: tuple[Console, Containers], page: BrowserPage
) -> None:
    console, containers = docker_console
    with trio.fail_after(DEADLINE):
        await page.run(steps.open_console, console.url)
        channel_id = await page.run(steps.create_channel, "console-tasks")
        containers.also_remove(f"loop-channel={channel_id}")

        def create_and_run(p: Any) -> None:
            steps.open_view(p, "Tasks")
            form = p.locator("form.task-form").first
            form.get_by_label("Type").select_option("interval")
            form.get_by_label("Schedule").fill("2h")
            form.get_by_label("Prompt").fill("Summarise the day")
            form.get_by_role("button", name="Create task").click()
            task = p.locator("li.task", has_text="Summarise the day")
            task.wait_for()
            # A readable next run: relative and absolute.
            task.locator(".next-run", has_text="in 2 hours").wait_for()
            task.get_by_role("button", name="Run now").click()
            task.locator(".task-runs .badge.status-success").wait_for()
            shot(p, "tasks")

        await page.run(create_and_run)
        async with api(console) as client:
            (task,) = (await client.get("/api/tasks", params={"channel_id": channel_id})).json()
            runs = (await client.get(f"/api/tasks/{task['id']}/runs")).json()["runs"]
        assert task["schedule"] == "2h"
        assert task["type"] == "interval"
        assert [r["status"] for r in runs] == ["success"]

        def edit_toggle_and_bad_input(p: Any) -> str:
            task = p.locator("li.task").first
            task.get_by_label(f"Task {task_id} enabled").uncheck()
            p.locator("li.task.disabled").wait_for()
            task = p.locator("li.task").first
            task.get_by_role("button", name="Edit").click()
            editor = task.locator(".task-editor form")
            editor.get_by_label("Schedule").fill("not a duration")
            editor.get_by_role("button", name="Save").click()
            error = p.locator(".toast-error")
            error.wait_for()
            return str(error.text_content())

        task_id = task["id"]
        error = await page.run(edit_toggle_and_bad_input)
        assert error.startswith("Task not saved: ")
        async with api(console) as client:
            after = (await client.get(f"/api/tasks/{task_id}")).json()
        assert after["enabled"] is False
        assert after["schedule"] == "2h"  # the bad edit changed nothing

        def delete(p: Any) -> None:
            p.once("dialog", lambda dialog: dialog.accept())
            p.locator("li.task").first.get_by_role("button", name="Delete").click()
            p.locator("li.task").wait_for(state="detached")

        await page.run(delete)
        async with api(console) as client:
            assert (await client.get("/api/tasks", params={"channel_id": channel_id})).json() == []


async def test_memory_index_and_search(
    docker_console: tuple[Console, Containers], page: BrowserPage, tmp_path: Path
) -> None:
    console, containers = docker_console
    project = tmp_path / "project"
    (project / ".loop").mkdir(parents=True)
    (project / ".loop" / "config.json").write_text('{"memory": {"paths": ["notes"]}}')
    (project / "notes").mkdir()
    (project / "notes" / "deploy.md").write_text(
        "# Deploying\n\nThe staging cluster is rebuilt every Tuesday by the pelican job.\n"
    )
    (project / "notes" / "other.md").write_text("# Lunch\n\nSoup on Fridays.\n")
    with trio.fail_after(DEADLINE):
        await page.run(steps.open_console, console.url)
        channel_id = await page.run(steps.create_channel, str(project))
        containers.also_remove(f"loop-channel={channel_id}")

        def search(p: Any) -> list[str]:
            steps.open_view(p, "Memory")
            p.get_by_role("button", name="Index now").click()
            p.locator(".summary", has_text="2 files").wait_for()
            p.get_by_label("Search memory").fill("pelican")
            p.get_by_role("button", name="Search", exact=True).click()
            p.locator(".memory-result").first.wait_for()
            shot(p, "memory")
            return list(
                p.eval_on_selector_all(".memory-result code", "els => els.map(e => e.textContent)")
            )

        files = await page.run(search)
        assert files == [str(project / "notes" / "deploy.md")]


# The last "ROWS COLS" line the current terminal shows (`stty size`), or null.
STTY_SIZE = """() => {
  const rows = Array.from(document.querySelectorAll('.term-stage .xterm-rows > div'))
    .map(r => r.textContent.trim()).filter(t => /^[0-9]+ [0-9]+$/.test(t));
  return rows.length ? rows[rows.length - 1] : null;
}"""

# The terminal tabs' session ids this browser tab remembers for a channel.
SESSION_IDS = (
    "id => JSON.parse(sessionStorage.getItem(`loop.terminals.${id}`)).map(t => t.sessionId)"
)


async def test_terminal_echo_and_reattach_after_reload(
    docker_console: tuple[Console, Containers], page: BrowserPage
) -> None:
    console, containers = docker_console
    with trio.fail_after(DEADLINE):
        await page.run(steps.open_console, console.url)
        channel_id = await page.run(steps.create_channel, "console-term")
        containers.also_remove(f"loop-channel={channel_id}")

        def shell(p: Any) -> None:
            steps.open_view(p, "Terminal")
            p.get_by_role("button", name="+ Shell").click()
            p.locator(".term-status", has_text="attached").wait_for()
            steps.type_in_terminal(p, "echo hi\n")
            steps.wait_for_terminal_line(p, "hi")
            # A second tab is a second session in the same container.
            p.get_by_role("button", name="+ Shell").click()
            p.locator(".term-tab-button.state-live").nth(1).wait_for()
            steps.type_in_terminal(p, "echo second-$((20+22))\n")
            steps.wait_for_terminal_line(p, "second-42")
            shot(p, "terminal")

        await page.run(shell)
        sessions_before = await page.evaluate(SESSION_IDS, channel_id)
        assert len(sessions_before) == 2 and all(sessions_before)

        def reload_and_reattach(p: Any) -> None:
            p.reload()
            p.locator(".term-status", has_text="attached").wait_for()
            # The first tab re-attached: the server replayed its recent output.
            steps.wait_for_terminal_line(p, "hi")
            steps.type_in_terminal(p, "echo again\n")
            steps.wait_for_terminal_line(p, "again")

        await page.run(reload_and_reattach)
        sessions_after = await page.evaluate(SESSION_IDS, channel_id)
        assert sessions_after == sessions_before

        def resize_detach_and_claude(p: Any) -> tuple[str, str]:
            steps.type_in_terminal(p, "clear; stty size\n")
            p.wait_for_function(STTY_SIZE)
            before = str(p.evaluate(STTY_SIZE))
            # A smaller window: the screen refits and the shell's terminal follows.
            p.set_viewport_size({"width": 900, "height": 560})
            p.wait_for_function(
                "cols => document.querySelector('.term-stage .xterm-rows > div') &&"
                " document.querySelector('.term-stage').clientWidth < 700",
                arg=0,
            )
            steps.type_in_terminal(p, "clear; stty size\n")
            p.wait_for_function(f"() => ({STTY_SIZE})() && ({STTY_SIZE})() !== {before!r}")
            after = str(p.evaluate(STTY_SIZE))
            # Detach, then re-attach: the session is still there with its output.
            p.get_by_role("button", name="Detach", exact=True).click()
            p.locator(".term-status", has_text="detached").wait_for()
            p.get_by_role("button", name="Re-attach").click()
            p.locator(".term-status", has_text="attached").wait_for()
            steps.wait_for_terminal_line(p, after)
            # An interactive Claude tab: the server types the claude command into its shell.
            p.get_by_role("button", name="+ Claude").click()
            p.locator(".term-tab.current .term-tab-button.state-live", has_text="Claude").wait_for()
            p.wait_for_function(
                "() => Array.from(document.querySelectorAll('.term-stage .xterm-rows > div'))"
                ".some(r => r.textContent.includes('/usr/local/bin/claude'))"
            )
            return before, after

        before, after = await page.run(resize_detach_and_claude)
        rows_before, cols_before = map(int, before.split())
        rows_after, cols_after = map(int, after.split())
        assert rows_after < rows_before and cols_after < cols_before


async def test_server_killed_mid_stream_then_the_console_recovers(
    docker_console: tuple[Console, Containers], page: BrowserPage
) -> None:
    console, containers = docker_console
    with trio.fail_after(DEADLINE):
        await page.run(steps.open_console, console.url)
        channel_id = await page.run(steps.create_channel, "console-crash")
        containers.also_remove(f"loop-channel={channel_id}")

        def start_long_run(p: Any) -> None:
            steps.send(p, "Long job STUB:TURNS=20 STUB:SLOW")
            p.locator(".live .streaming .content", has_text="Working on").wait_for()

        await page.run(start_long_run)
        await kill(console)

        def sees_disconnect(p: Any) -> None:
            p.locator(".connection.state-reconnecting").wait_for()
            shot(p, "disconnected")

        await page.run(sees_disconnect)
        async with running(console):

            def recovers(p: Any) -> None:
                p.locator(".connection.state-live").wait_for()
                # The new server run cannot replay the old one's events: the console reloads
                # the history over REST and drops the dead run's streamed text.
                p.locator(".live .streaming").wait_for(state="detached")
                steps.wait_for_message(p, "user", "Long job")
                steps.send(p, "After the crash")
                steps.wait_for_message(p, "agent", "After the crash")
                shot(p, "recovered")

            await page.run(recovers)
            # Each message once: nothing lost, nothing doubled by the reconnect. (The server
            # answers the run it lost together with the next message.)
            asked = await page.run(steps.message_texts, "user")
            assert asked == ["Long job STUB:TURNS=20 STUB:SLOW", "After the crash"]
            answers = await page.run(steps.message_texts, "agent")
            assert len(answers) == 1 and "After the crash" in answers[0]
