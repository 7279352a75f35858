"""Fixtures for tests that drive a real headless Chromium.

The browser is Debian's own Chromium (``/usr/bin/chromium``, or ``LOOP_CHROMIUM``), installed by
``scripts/browser-env.sh`` (run by ``make test``). Python Playwright drives it through the
driver its wheel bundles; Playwright's own browser downloads (``playwright install``) are never
used. Without a Chromium these tests skip loudly, and fail instead when ``CI=true`` or
``LOOP_REQUIRE_BROWSER=1``.

Playwright's sync API is bound to the thread that started it, and the server under test runs in
the test's own Trio loop, so every Playwright call runs on one dedicated thread
(``BrowserThread``) while the Trio loop keeps serving; tests ``await page.run(fn)`` where ``fn``
receives the Playwright ``Page``.

* ``browser`` (session): one Chromium for the whole run, launched with a fresh temporary
  profile (Playwright makes one per launch and removes it at close).
* ``page`` (test): a new browser context (its own cookies, storage and cache) and page. When the
  test fails, a screenshot goes to ``build/test-artifacts/<test name>.png``.
* ``other_origin`` (test): a second loopback web server, a different origin from the server
  under test, serving the pages a test gives it — the "some other web site" of the threat.
* ``REBINDING_HOST``: a name this Chromium resolves to 127.0.0.1 (``--host-resolver-rules``),
  the way an attacker's name resolves after DNS rebinding.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

T = TypeVar("T")

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
CALL_TIMEOUT = 60  # seconds, for any one blocking Playwright call made outside Trio
SCRIPT_TIMEOUT = 30  # seconds a script run by ``BrowserPage.evaluate`` may take (tests: 60)

#: A name this Chromium resolves to 127.0.0.1, as an attacker's name does after DNS rebinding.
REBINDING_HOST = "rebinding.test"

# Everything that could make Chromium reach beyond loopback or do work of its own is off; no
# proxy (a proxy from the environment would get the rebinding name's requests).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    f"--host-resolver-rules=MAP {REBINDING_HOST} 127.0.0.1",
]


def browser_required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("LOOP_REQUIRE_BROWSER") == "1"


def browser_unavailable(reason: str) -> None:
    """Skip loudly — or fail, in CI (``CI=true``) or with ``LOOP_REQUIRE_BROWSER=1``."""
    if browser_required():
        pytest.fail(f"BROWSER REQUIRED (CI or LOOP_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
    pytest.skip(
        f"!!! BROWSER TESTS SKIPPED: {reason} — run `bash scripts/browser-env.sh` as root "
        "(apt-get install chromium)"
    )


def chromium_path() -> str:
    path = os.environ.get("LOOP_CHROMIUM", "/usr/bin/chromium")
    found = shutil.which(path)
    if found is None:
        browser_unavailable(f"no Chromium at {path}")
        raise AssertionError("unreachable")
    try:
        subprocess.run(
            [found, "--headless", "--no-sandbox", "--version"],
            check=True,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as error:
        browser_unavailable(f"{found} --version failed: {error}")
    return found


class BrowserThread:
    """One thread that owns Playwright: every call on its objects must happen there."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright")

    def call_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """For fixtures' set-up and teardown, outside any Trio loop's hot path."""
        return self._pool.submit(fn, *args).result(timeout=CALL_TIMEOUT)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the browser thread while this Trio loop keeps running."""
        future: Future[T] = self._pool.submit(fn, *args)
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def wake(_: Future[T]) -> None:
            # The test may have ended (cancelled, loop closed) before the browser answered.
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        future.add_done_callback(wake)
        await done.wait()
        return future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@dataclass
class Browser:
    thread: BrowserThread
    chromium: Any  # playwright.sync_api.Browser, touched only on ``thread``
    version: str


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    thread = BrowserThread()
    playwright = thread.call_blocking(lambda: sync_playwright().start())
    try:
        chromium = thread.call_blocking(
            lambda: playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
        )
    except Exception as error:
        thread.call_blocking(playwright.stop)
        thread.close()
        browser_unavailable(f"Playwright could not launch {executable}: {error}")
        raise
    try:
        yield Browser(thread=thread, chromium=chromium, version=chromium.version)
    finally:
        thread.call_blocking(chromium.close)
        thread.call_blocking(playwright.stop)
        thread.close()


@dataclass
class BrowserPage:
    """A fresh context and page; use it only through ``run``."""

    thread: BrowserThread
    page: Any  # playwright.sync_api.Page
    console: list[str] = field(default_factory=list)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(page, *args)`` on the browser thread."""
        return await self.thread.call(fn, self.page, *args)

    async def goto(self, url: str) -> None:
        await self.run(lambda page: page.goto(url, timeout=CALL_TIMEOUT * 1000))

    async def evaluate(self, script: str, arg: Any = None, seconds: float = SCRIPT_TIMEOUT) -> Any:
        """Run a JavaScript function of one argument (async or not) in the page; its JSON
        result. Playwright's ``evaluate`` has no deadline of its own, and the browser thread
        cannot be interrupted from Trio: a script still running after ``seconds`` is
        rejected in the page, so a hung script fails its test instead of blocking the thread.
        A script may keep what it has done so far in ``window.progress``: the rejection shows
        it."""
        bounded = (
            "async (arg) => Promise.race([(" + script + ")(arg), new Promise((_, reject) =>"
            " setTimeout(() => reject(new Error("
            f"'script still running after {seconds} s; window.progress: '"
            " + JSON.stringify(window.progress))),"
            f" {int(seconds * 1000)}))])"
        )
        return await self.run(lambda page: page.evaluate(bounded, arg))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Remembered so the page fixture knows, at teardown, whether the test failed.
    report = yield
    if report.when == "call":
        item.stash[_failed_key] = report.failed
    return report


_failed_key = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserPage]:
    thread = browser.thread
    context = thread.call_blocking(lambda: browser.chromium.new_context())
    handle = BrowserPage(thread=thread, page=thread.call_blocking(context.new_page))
    thread.call_blocking(
        lambda: handle.page.on("console", lambda m: handle.console.append(f"{m.type}: {m.text}"))
    )
    try:
        yield handle
    finally:
        if request.node.stash.get(_failed_key, False):
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
            thread.call_blocking(
                lambda: handle.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
            )
        thread.call_blocking(context.close)


class OtherOrigin:
    """A loopback web server of its own origin, serving ``pages`` (path → (type, body))."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, bytes]] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                content_type, body = pages.get(self.path.split("?")[0], ("", b""))
                self.send_response(200 if content_type else 404)
                self.send_header("Content-Type", content_type or "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test's output is for the test

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def serve(self, path: str, html: str) -> str:
        """Serve ``html`` at ``path``; its URL."""
        self.pages[path] = ("text/html; charset=utf-8", html.encode())
        return self.origin + path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def other_origin() -> Iterator[OtherOrigin]:
    site = OtherOrigin()
    try:
        yield site
    finally:
        site.close()
