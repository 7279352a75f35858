"""What loop-server's own code costs per request, without sockets, h11 or hypercorn.

The ASGI app the server serves (gateway, lean routes, services, store) is called directly, in
the server's own process and event loop, by 8 concurrent tasks, with the same requests as
``benchmarks/rest.py``; reported per request: the CPU time of the event loop's thread
(``time.thread_time``), of the whole process (worker threads included: the COMMIT's fsync, the
non-keyed reads), and wall time. Subtracted from ``rest.py``'s CPU per request, it leaves what
hypercorn, h11 and the socket cost the same request.

Usage:  .venv/bin/python benchmarks/rest_inprocess.py [--requests N] [--rounds R]
Nothing is written outside a temporary directory, which is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import trio

from loop_server.config import Config
from loop_server.runtime import run_server

CONCURRENCY = 8
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
Request = tuple[str, str, bytes]


async def call(app: App, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request through the ASGI app; (status, body)."""
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    answer: dict[str, Any] = {"body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "extensions": {},
    }
    await app(scope, receive, send)
    return answer["status"], answer["body"]


async def measure(
    app: App, make: Callable[[int], Request], expect: int, requests: int
) -> tuple[float, float, float]:
    """(loop thread, process, wall) µs per request over ``requests`` requests."""
    numbers = iter(range(10**9))

    async def worker() -> None:
        for _ in range(requests // CONCURRENCY):
            method, path, body = make(next(numbers))
            status, answer = await call(app, method, path, body)
            if status != expect:
                raise SystemExit(f"{method} {path}: expected {expect}, got {status}: {answer!r}")

    loop0, process0, wall0 = time.thread_time(), time.process_time(), time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(CONCURRENCY):
            nursery.start_soon(worker)
    done = requests // CONCURRENCY * CONCURRENCY
    return (
        (time.thread_time() - loop0) / done * 1e6,
        (time.process_time() - process0) / done * 1e6,
        (time.perf_counter() - wall0) / done * 1e6,
    )


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


async def main(options: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="loop-bench-inprocess-") as tmp:
        os.environ["HOME"] = tmp  # the server's default claude dir lives under HOME
        config = Config(
            addr="127.0.0.1:0",
            data_dir=Path(tmp) / "data",
            container_image="loop-bench-missing:none",
        )
        async with trio.open_nursery() as nursery:
            server = await nursery.start(run_server, config)
            app = server.services.app

            async def create(name: str) -> str:
                status, body = await call(
                    app, "POST", "/api/channels/create", _json({"name": name})
                )
                assert status == 201, body
                return str(json.loads(body)["channel_id"])

            channel, tasks_channel = await create("bench"), await create("bench-tasks")
            task = {"channel_id": channel, "schedule": "1h", "type": "interval", "prompt": "x"}
            status, body = await call(app, "POST", "/api/tasks", _json(task))
            assert status == 201, body
            task_id = json.loads(body)["id"]

            def new_task(n: int) -> Request:
                body = {**task, "channel_id": tasks_channel, "prompt": f"t{n}"}
                return ("POST", "/api/tasks", _json(body))

            routes: list[tuple[str, Callable[[int], Request], int]] = [
                ("GET /api/health", lambda n: ("GET", "/api/health", b""), 200),
                ("GET /api/channels", lambda n: ("GET", "/api/channels", b""), 200),
                ("GET /api/tasks/<id>", lambda n: ("GET", f"/api/tasks/{task_id}", b""), 200),
                ("POST /api/tasks", new_task, 201),
                (
                    "POST /api/commands (tasks)",
                    lambda n: (
                        "POST",
                        "/api/commands",
                        _json({"channel_id": channel, "command": "tasks"}),
                    ),
                    204,
                ),
                (
                    "POST /api/messages (stored)",
                    lambda n: (
                        "POST",
                        "/api/messages",
                        _json({"channel_id": channel, "content": f"m{n}"}),
                    ),
                    204,
                ),
            ]
            figures: dict[str, list[tuple[float, float, float]]] = {}
            for _ in range(options.rounds):
                for name, make, expect in routes:
                    figures.setdefault(name, []).append(
                        await measure(app, make, expect, options.requests)
                    )
                    await server.services.orchestrator.wait_idle()
            server.shutdown()
    print("| route | loop thread µs/req | process µs/req | wall µs/req |")
    print("|---|---:|---:|---:|")
    for name, rows in figures.items():
        loop, process, wall = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"| {name} | {loop:.0f} | {process:.0f} | {wall:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    trio.run(main, parser.parse_args())
