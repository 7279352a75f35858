"""No drive-by, with a real headless Chromium: what a web page can make the browser send.

A page served from another local origin (``other_origin``) tries everything a page can send
without the user's say: ``fetch`` in cors and no-cors mode with JSON and text/plain bodies, a
form post into a hidden frame, and both WebSockets. Against a default server every attempt is
refused and nothing is created (no message, no task, no terminal session). The same script
from an origin in ``allowed_origins`` does get through (so the refusals are the server's, not
the browser's), and a page of the server's own origin keeps working. Until the console exists
(``GET /``), the server's own origin is given a page by loading ``/api/health``: scripts
evaluated in it run with the server's origin, as the console's will. A DNS-rebinding-style
name (``REBINDING_HOST``, resolved to 127.0.0.1 by this Chromium) is refused by its ``Host``.

Rules: the real server in the test's Trio loop (127.0.0.1, port 0), Chromium on its own thread;
what the server stored is checked through its API by a client that sends no ``Origin``; every
wait is under a deadline; nothing sleeps (the page's script resolves on the browser's events).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from loop_server.runtime import ServerHandle, run_server
from tests.browser.conftest import CALL_TIMEOUT, REBINDING_HOST, BrowserPage, OtherOrigin
from tests.conftest import create_channel, make_config

pytestmark = pytest.mark.browser

DEADLINE = 60


def create_shell(channel_id: str) -> dict[str, Any]:
    return {"type": "create", "channel_id": channel_id, "cmd": ["/bin/sh"]}


ATTACH = {"type": "attach", "session_id": "no-such-session"}

# Every kind of attempt, run in the page; each resolves on a browser event, never a timer.
# ``terminalFirst``: the first terminal message (the attack: create a shell in the channel's
# container; pages that may: an attach, answered without making any container).
ATTEMPTS = """
async ([base, channel, terminalFirst]) => {
  const wsBase = base.replace(/^http/, "ws");
  const message = JSON.stringify({channel_id: channel, content: "drive-by"});
  const task = JSON.stringify(
    {channel_id: channel, schedule: "1h", type: "interval", prompt: "drive-by"});
  const results = {};
  window.progress = results;
  async function attempt(name, run) {
    try {
      const response = await run();
      const body = response.type === "opaque" ? null : await response.text();
      results[name] = {sent: true, type: response.type, status: response.status, body};
    } catch (error) {
      results[name] = {sent: false, error: String(error)};
    }
  }
  const post = (path, type, body, mode) =>
    fetch(base + path, {method: "POST", mode, headers: {"Content-Type": type}, body});
  await attempt("cors json", () => post("/api/messages", "application/json", message, "cors"));
  await attempt("cors text", () => post("/api/messages", "text/plain", message, "cors"));
  await attempt("no-cors text", () => post("/api/messages", "text/plain", message, "no-cors"));
  await attempt(
    "no-cors json", () => post("/api/messages", "application/json", message, "no-cors"));
  await attempt("no-cors task", () => post("/api/tasks", "text/plain", task, "no-cors"));
  await attempt("cors read", () => fetch(base + "/api/channels"));

  function socket(path, first) {
    return new Promise(resolve => {
      const ws = new WebSocket(wsBase + path);
      ws.onopen = () => {
        ws.send(JSON.stringify(first));
        ws.onmessage = event => { resolve({opened: true, reply: String(event.data)}); ws.close(); };
      };
      ws.onclose = event => resolve({opened: false, code: event.code});
    });
  }
  results["events socket"] = await socket(
    "/api/ws?hello=1", {type: "subscribe", channels: [channel]});
  results["terminal socket"] = await socket("/api/ws/terminal", terminalFirst);
  return results;
}
"""


# A form post into a hidden frame (text/plain: ``name=value`` is made to read as the JSON
# body); the submit returns at once, ``form_post`` waits for the server's answer.
FORM_POST = """
([action, channel]) => {
  const frame = document.createElement("iframe");
  frame.name = "sink";
  document.body.appendChild(frame);
  const form = document.createElement("form");
  form.method = "POST";
  form.action = action;
  form.enctype = "text/plain";
  form.target = "sink";
  const field = document.createElement("input");
  field.name = '{"channel_id":"' + channel + '","content":"form post","x":"';
  field.value = '"}';
  form.appendChild(field);
  document.body.appendChild(form);
  form.submit();
}
"""


async def form_post(page: BrowserPage, base: str, channel_id: str) -> int:
    """Submit the form from the page; the status the server answered (a 204 never loads the
    frame, so the page itself could not tell)."""
    action = base + "/api/messages"

    def submit(p: Any) -> int:
        answer = lambda r: r.url == action and r.request.method == "POST"  # noqa: E731
        with p.expect_response(answer, timeout=CALL_TIMEOUT * 1000) as response:
            p.evaluate(FORM_POST, [action, channel_id])
        return int(response.value.status)

    return await page.run(submit)


async def start(nursery: trio.Nursery, tmp_path: Path, **overrides: Any) -> ServerHandle:
    config = make_config(tmp_path / "data", **overrides)
    with trio.fail_after(DEADLINE):
        handle: ServerHandle = await nursery.start(partial(run_server, config))
    return handle


@pytest.fixture
async def api(server: ServerHandle) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends no Origin (a script), to see what the server stored."""
    async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as client:
        yield client


async def stored(api: httpx.AsyncClient, channel_id: str) -> tuple[list[str], list[str]]:
    """The contents of the channel's user messages and the prompts of its tasks."""
    history = (await api.get(f"/api/channels/{channel_id}/messages")).json()["messages"]
    tasks = (await api.get("/api/tasks", params={"channel_id": channel_id})).json()
    return [m["content"] for m in history if not m["is_bot"]], [t["prompt"] for t in tasks]


def server_responses(page: BrowserPage, base: str) -> list[tuple[str, str, int]]:
    """Every HTTP answer the page got from ``base``, as Playwright saw it on the wire (the
    page's own script cannot see an opaque one's status)."""
    seen: list[tuple[str, str, int]] = []

    def record(page_: Any) -> None:
        page_.on(
            "response",
            lambda r: (
                seen.append((r.request.method, r.url, r.status)) if r.url.startswith(base) else None
            ),
        )

    page.thread.call_blocking(record, page.page)
    return seen


async def test_a_page_of_another_origin_is_refused_everything(
    page: BrowserPage, other_origin: OtherOrigin, server: ServerHandle, api: httpx.AsyncClient
) -> None:
    channel_id = await create_channel(api, "victim")
    seen = server_responses(page, server.url)
    with trio.fail_after(DEADLINE):
        await page.goto(other_origin.serve("/", "<title>some site</title>"))
        results = await page.evaluate(ATTEMPTS, [server.url, channel_id, create_shell(channel_id)])
        assert await form_post(page, server.url, channel_id) == 403
    # A cors request's refusal is unreadable to the page: fetch rejects.
    for name in ("cors json", "cors text", "cors read"):
        assert results[name]["sent"] is False, (name, results[name])
    # no-cors requests reach the server (no preflight), and their answers are opaque.
    for name in ("no-cors text", "no-cors json", "no-cors task"):
        assert results[name] == {"sent": True, "type": "opaque", "status": 0, "body": None}
    # Neither socket opens.
    assert results["events socket"]["opened"] is False
    assert results["terminal socket"]["opened"] is False
    # What the server answered: a 403 to every request that got to it.
    posts = [(method, status) for method, url, status in seen if method == "POST"]
    # The no-cors requests and the form post reached the server (a cors one whose answer the
    # browser blocked is reported as failed, not as a response).
    assert len(posts) >= 4, seen
    assert {status for _, status in posts} == {403}, seen
    assert (await stored(api, channel_id)) == ([], [])
    assert server.services.terminals.statistics().sessions == 0


async def test_the_same_page_from_an_allowed_origin_gets_through(
    page: BrowserPage, other_origin: OtherOrigin, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The control: with the page's origin in ``allowed_origins`` the same script works, so
    the refusals above are the server's doing, not the browser's."""
    server = await start(nursery, tmp_path, allowed_origins=(other_origin.origin,))
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as api:
            channel_id = await create_channel(api, "allowed")
            with trio.fail_after(DEADLINE):
                await page.goto(other_origin.serve("/", "<title>dev server</title>"))
                results = await page.evaluate(ATTEMPTS, [server.url, channel_id, ATTACH])
                assert await form_post(page, server.url, channel_id) == 204
            assert results["cors json"] == {"sent": True, "type": "cors", "status": 204, "body": ""}
            assert results["cors read"]["status"] == 200
            assert results["events socket"]["opened"] is True
            assert '"type":"hello"' in results["events socket"]["reply"]
            assert results["terminal socket"]["opened"] is True
            reply = json.loads(results["terminal socket"]["reply"])
            assert reply == {
                "type": "error",
                "message": "session not found",
                "error_code": "session_failed",
            }
            messages, tasks = await stored(api, channel_id)
            assert messages.count("drive-by") == 4 and "form post" in messages
            assert tasks == ["drive-by"]
    finally:
        server.shutdown()


async def test_a_page_of_the_servers_own_origin_keeps_working(
    page: BrowserPage, server: ServerHandle, api: httpx.AsyncClient
) -> None:
    channel_id = await create_channel(api, "console")
    with trio.fail_after(DEADLINE):
        await page.goto(server.url + "/api/health")  # a document of the server's origin
        results = await page.evaluate(ATTEMPTS, [server.url, channel_id, ATTACH])
        assert await form_post(page, server.url, channel_id) == 204
    assert results["cors json"]["status"] == 204
    assert results["cors read"]["status"] == 200
    assert results["events socket"]["opened"] is True
    assert results["terminal socket"]["opened"] is True
    assert "session not found" in results["terminal socket"]["reply"]
    messages, tasks = await stored(api, channel_id)
    assert "drive-by" in messages and "form post" in messages
    assert tasks == ["drive-by"]


async def test_a_rebinding_name_is_refused(
    page: BrowserPage, server: ServerHandle, api: httpx.AsyncClient
) -> None:
    """After rebinding, the attacker's page *is* same-origin with what answers on the port;
    its Host header still names the attacker's site."""
    channel_id = await create_channel(api, "rebound")
    base = f"http://{REBINDING_HOST}:{server.port}"
    with trio.fail_after(DEADLINE):
        response = await page.run(lambda p: p.goto(base + "/api/health"))
        assert response.status == 403
        assert "DNS rebinding" in await page.run(lambda p: response.text())
        results = await page.evaluate(ATTEMPTS, [base, channel_id, create_shell(channel_id)])
        assert await form_post(page, base, channel_id) == 403
    # Same origin now, so the page can read the answers: each one a 403.
    for name in ("cors json", "cors text", "cors read"):
        assert results[name]["status"] == 403, (name, results[name])
        assert results[name]["body"].startswith(f'forbidden: host "{REBINDING_HOST}:')
    assert results["events socket"]["opened"] is False
    assert results["terminal socket"]["opened"] is False
    assert (await stored(api, channel_id)) == ([], [])
    assert server.services.terminals.statistics().sessions == 0
