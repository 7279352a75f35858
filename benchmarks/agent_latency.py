"""Time from ``POST /api/messages`` to ``agent.status running`` and to the first streamed turn.

The real Claude Code CLI in the agent image answers through the fake Messages API of the tests
(which answers at once), on a ``--network none`` holder's loopback; the peer is the same server
with the shell stub of the fast tests (tests/docker/image/claude-stub) in the test image. Runs
alternate between the two, one channel each, so both see the same machine load.

    .venv/bin/python benchmarks/agent_latency.py [--runs 50]

Needs root, Docker and the images (``make agent-image``, ``scripts/docker-env.sh``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import docker
import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loop_server.runtime import ServerHandle, run_server
from tests.agent_real.conftest import (
    HOLDER_IMAGE,
    FakeApi,
    Holder,
    listen_in_netns,
    real_config,
)
from tests.conftest import make_config
from tests.events.events_helpers import connect_ws
from tests.fakes.anthropic_api import FakeAnthropic, Reply


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_run(handle: ServerHandle, channel: str, ws: Any) -> tuple[float, float]:
    """(seconds to running, seconds to the first message.streaming) of one message."""
    async with httpx.AsyncClient(base_url=handle.url, timeout=60) as http:
        started = trio.current_time()
        reply = await http.post("/api/messages", json={"channel_id": channel, "content": "hi"})
        assert reply.status_code == 204, reply.text
    running = first = 0.0
    with trio.fail_after(120):
        while True:
            event = json.loads(await ws.get_message())
            if event["channel_id"] != channel:
                continue
            now = trio.current_time() - started
            if event["type"] == "agent.status" and event["data"]["status"] == "running":
                running = now
            elif event["type"] == "message.streaming" and not first:
                first = now
            elif event["type"] == "agent.status" and event["data"]["status"] != "running":
                assert event["data"]["status"] == "completed", event
                return running, first


async def main(runs: int) -> None:
    client = docker.from_env()
    holder_container = client.containers.run(
        HOLDER_IMAGE,
        ["sleep", "86400"],
        detach=True,
        network_mode="none",
        labels={"loop-test": "1", "loop-test.run": "agent-latency"},
    )
    try:
        holder_container.reload()
        holder = Holder(holder_container.id, int(holder_container.attrs["State"]["Pid"]))
        sock = listen_in_netns(holder.pid)
        port = sock.getsockname()[1]
        sock.setblocking(False)
        fake = FakeAnthropic()
        fake.fallback = Reply(text="pong")
        with tempfile.TemporaryDirectory(prefix="loop-bench-") as tmp:
            real = real_config(Path(tmp) / "real", holder, FakeApi(fake, port))
            stub = replace(make_config(Path(tmp) / "stub"), container_network="none")
            await measure(runs, fake, sock, {"real CLI": real, "stub": stub})
    finally:
        holder_container.remove(force=True)
        client.close()


async def measure(runs: int, fake: FakeAnthropic, sock: Any, configs: dict[str, Any]) -> None:
    figures: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in configs}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fake.serve, trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
        handles: dict[str, ServerHandle] = {}
        for name, config in configs.items():
            handles[name] = await nursery.start(partial(run_server, config))
        sockets = {}
        for name, handle in handles.items():
            sockets[name] = await nursery.start(_ws, handle)
        channels = {}
        for name, handle in handles.items():
            async with httpx.AsyncClient(base_url=handle.url) as http:
                made = await http.post("/api/channels/create", json={"name": "bench"})
                channels[name] = made.json()["channel_id"]
        for name in handles:  # warm-up: the first container of an image is slower
            await one_run(handles[name], channels[name], sockets[name][0])
        for i in range(runs):
            for name in handles if i % 2 == 0 else reversed(list(handles)):
                running, first = await one_run(handles[name], channels[name], sockets[name][0])
                figures[name][0].append(running)
                figures[name][1].append(first)
        report(figures, runs)
        for _, stop in sockets.values():
            stop()
        for handle in handles.values():
            handle.shutdown()
        nursery.cancel_scope.cancel()  # the fake API serves until cancelled


async def _ws(handle: ServerHandle, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    async with connect_ws(handle.port, "/api/ws") as ws:
        done = trio.Event()
        stop: Callable[[], None] = done.set
        task_status.started((ws, stop))
        await done.wait()


def report(figures: dict[str, tuple[list[float], list[float]]], runs: int) -> None:
    print(f"{runs} runs each, alternating; milliseconds; machine shared ({os.cpu_count()} CPUs)")
    print("| server | running p50 | running p99 | first turn p50 | first turn p99 |")
    print("|---|---:|---:|---:|---:|")
    for name, (running, first) in figures.items():
        row = [percentile(running, 0.5), percentile(running, 0.99)]
        row += [percentile(first, 0.5), percentile(first, 0.99)]
        print(f"| {name} | " + " | ".join(f"{v * 1000:.0f}" for v in row) + " |")
    (real_first, stub_first) = (figures["real CLI"][1], figures["stub"][1])
    ratio = statistics.median(real_first) / statistics.median(stub_first)
    print(f"first turn, real CLI / stub (p50): {ratio:.2f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    trio.run(main, parser.parse_args().runs)
