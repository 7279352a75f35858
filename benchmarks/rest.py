"""REST throughput and latency of the hot routes: loop-server against a persisting Node peer and
the bare-ASGI hypercorn-trio floor, measured alternately in one run.

Targets (each a separate process on 127.0.0.1):

* ``ours``: ``loop-server serve`` on a temp data dir, real Docker engine when one answers (agent
  runs point at an image that does not exist, so a stored user message's run fails at once
  with one Docker call and a stored error reply, instead of starting containers);
* ``node``: ``benchmarks/peers/rest/rest_store_peer.js``: node:http + better-sqlite3 12, WAL,
  ``synchronous=FULL``, one transaction per write (``make bench-rest-peer`` installs it);
* ``floor``: ``benchmarks/peers/rest/asgi_floor.py``: hypercorn's trio worker, a bare ASGI app
  answering a constant (the same answer for every route: the cheapest any route can be here);
* ``listener``: the same bare app behind loop-server's listener (``asgi_floor.py
  --behind-loop-listener``): what the listener's changes to hypercorn save, apart from what
  loop-server's own code costs.

Load client: this process, Trio, 8 keep-alive HTTP/1.1 connections each sending its next request
as soon as the previous answer is complete (closed loop), pre-built request bytes, answers
parsed by Content-Length only. Each (route, target) pair runs ``--seconds`` per round (the first
``WARMUP`` s not counted), targets rotated each round; the table quotes the median over rounds
of req/s and of the per-round p50/p99 latency, and each route's median ratio against the floor
and against the peer; and each target's CPU time per request (all its threads, and ours' event
loop's thread alone, from ``/proc/<pid>/stat``), which is steadier than req/s on a noisy
machine. Between runs, ours
is left to finish the agent runs its stored messages queued (``settle``).

Routes: health, channel list (2 channels, then 500), a history page (50 of 400 messages), task
get, a command (``tasks``: lists the channel's one task and stores the bot's reply; ours answers
once the command has started, and at most 32 run at once), task create (into a channel of its
own), a stored user message.

``--profile``: instead of the table, run ours (and the floor) under cProfile for a few seconds
per route and print where the time went, grouped by layer.

Usage:  .venv/bin/python benchmarks/rest.py [--quick] [--rounds N] [--seconds S] [--profile]
Nothing is written outside a temporary directory, which is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pstats
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio
from _proc import main_thread_cpu_seconds, process_cpu_seconds

HERE = Path(__file__).resolve().parent
PEER_DIR = HERE / "peers" / "rest"
CONNECTIONS = 8
WARMUP = 0.4
HISTORY_MESSAGES = 400
LIST_CHANNELS = 500
TARGETS = ("ours", "node", "floor", "listener")
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)

BARE = ("floor", "listener")  # the bare constant app, stock hypercorn and our listener
RequestMaker = Callable[[int], bytes]


def get(path: str) -> RequestMaker:
    raw = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    return lambda n: raw


def post(path: str, body: Callable[[int], dict[str, object]]) -> RequestMaker:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"

    def make(n: int) -> bytes:
        data = json.dumps(body(n)).encode()
        return f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data

    return make


# -- the targets ---------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    process: trio.Process
    port: int
    channel: str = ""
    # POST /api/tasks writes into a channel of its own: the command route lists ``channel``'s
    # tasks, and must list the same one task in every round, not the thousands created since.
    tasks_channel: str = ""
    task_id: int = 0


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    """Keep a pipe from filling up (and blocking the target)."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while await stream.receive_some(65536):
            pass


async def _ready_line(process: trio.Process, pattern: bytes, nursery: trio.Nursery) -> bytes:
    """What follows ``pattern`` on its line, in stdout (READY) or stderr (our log)."""
    stream = process.stdout if pattern == b"READY" else process.stderr
    other = process.stderr if pattern == b"READY" else process.stdout
    assert stream is not None and other is not None
    nursery.start_soon(_drain, other)
    seen = bytearray()
    with trio.fail_after(60):
        while (at := seen.find(pattern)) < 0 or b"\n" not in seen[at:]:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise SystemExit(f"target exited before it was ready:\n{seen.decode()}")
            seen += chunk
    nursery.start_soon(_drain, stream)
    return bytes(seen[at + len(pattern) :].split(b"\n", 1)[0])


async def start(
    name: str, tmp: Path, nursery: trio.Nursery, *, profile_to: Path | None = None
) -> Target:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOP_")}
    python = [sys.executable]
    if profile_to is not None:
        python += ["-m", "cProfile", "-o", str(profile_to)]
    if name == "ours":
        (tmp / "home").mkdir(exist_ok=True)
        env.update(HOME=str(tmp / "home"), LOOP_CONTAINER_IMAGE="loop-bench-missing:none")
        argv = [*python, "-m", "loop_server", "serve", "--addr", "127.0.0.1:0"]
        argv += ["--data-dir", str(tmp / "ours")]
        marker = b"api server started addr="
    elif name == "node":
        argv = ["node", str(PEER_DIR / "rest_store_peer.js"), str(tmp / "node.db")]
        marker = b"READY"
    else:
        argv = [*python, str(PEER_DIR / "asgi_floor.py")]
        if name == "listener":
            argv.append("--behind-loop-listener")
        marker = b"READY"
    process = await trio.lowlevel.open_process(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    line = (await _ready_line(process, marker, nursery)).decode().strip()
    port = int(line.split()[0].rsplit(":", 1)[-1])
    return Target(name, process, port)


async def stop(target: Target) -> None:
    target.process.send_signal(signal.SIGTERM)
    with trio.move_on_after(30):
        await target.process.wait()
        return
    target.process.kill()
    await target.process.wait()


# -- the load client -------------------------------------------------------------------------


class Http:
    """One keep-alive connection; ``call`` sends a request and returns (status, body).

    hypercorn ends a keep-alive connection after ``keep_alive_max_requests`` (1000) answers,
    saying ``Connection: close`` on the last: the next call then opens a new connection, as an
    HTTP client does (a route-level rate above ~2.7k req/s over 3 s reaches that count)."""

    def __init__(self, stream: trio.SocketStream, port: int) -> None:
        self.stream = stream
        self.port = port
        self.buf = bytearray()
        self.closing = False

    @classmethod
    async def open(cls, port: int) -> Http:
        return cls(await trio.open_tcp_stream("127.0.0.1", port), port)

    async def call(self, request: bytes) -> tuple[int, bytes]:
        if self.closing:
            await self.stream.aclose()
            self.stream = await trio.open_tcp_stream("127.0.0.1", self.port)
            self.buf.clear()
            self.closing = False
        await self.stream.send_all(request)
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                match = _LENGTH.search(self.buf, 0, end + 2)
                total = end + 4 + (int(match.group(1)) if match else 0)
                if len(self.buf) >= total:
                    status = int(self.buf[9:12])
                    body = bytes(self.buf[end + 4 : total])
                    self.closing = _CLOSE.search(self.buf, 0, end + 2) is not None
                    del self.buf[:total]
                    return status, body
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int = 0  # every answer of the run, the warm-up's included
    cpu_us: float = 0.0  # the target's CPU time (all its threads) per request, when measured
    loop_us: float = 0.0  # the same, its main thread (the event loop) alone


async def load(port: int, make: RequestMaker, expect: int, seconds: float) -> Sample:
    latencies: list[float] = []
    counter = iter(range(10**9))
    start = time.perf_counter()
    counted_from = start + WARMUP
    stop_at = start + seconds
    counted = 0
    answered = 0

    async def connection() -> None:
        nonlocal counted, answered
        http = await Http.open(port)
        try:
            while (now := time.perf_counter()) < stop_at:
                request = make(next(counter))
                status, body = await http.call(request)
                done = time.perf_counter()
                if status != expect:
                    raise SystemExit(f"expected {expect}, got {status}: {body[:200]!r}")
                answered += 1
                if now >= counted_from:
                    latencies.append(done - now)
                    counted += 1
        finally:
            await http.stream.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(CONNECTIONS):
            nursery.start_soon(connection)
    elapsed = time.perf_counter() - counted_from
    latencies.sort()
    return Sample(
        counted / elapsed,
        latencies[len(latencies) // 2] * 1e3,
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        requests=answered,
    )


async def call(target: Target, request: bytes) -> tuple[int, bytes]:
    http = await Http.open(target.port)
    try:
        return await http.call(request)
    finally:
        await http.stream.aclose()


# -- the routes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str
    make: Callable[[Target], RequestMaker]
    expect: int

    def status_for(self, target: Target) -> int:
        # The floor answers every request with the same 200: only its cost is compared.
        return 200 if target.name in BARE else self.expect


def _task_body(channel: str) -> Callable[[int], dict[str, object]]:
    return lambda n: {
        "channel_id": channel,
        "schedule": "1h",
        "type": "interval",
        "prompt": f"t{n}",
    }


ROUTES = (
    Route("GET /api/health", lambda t: get("/api/health"), 200),
    Route("GET /api/channels (2 channels)", lambda t: get("/api/channels"), 200),
    Route(
        "GET history page (50)",
        lambda t: get(f"/api/channels/{t.channel}/messages?limit=50"),
        200,
    ),
    Route("GET /api/tasks/<id>", lambda t: get(f"/api/tasks/{t.task_id}"), 200),
    Route(
        "POST /api/commands (tasks)",
        lambda t: post("/api/commands", lambda n: {"channel_id": t.channel, "command": "tasks"}),
        204,
    ),
    Route("POST /api/tasks", lambda t: post("/api/tasks", _task_body(t.tasks_channel)), 201),
    Route(
        "POST /api/messages (stored)",
        lambda t: post(
            "/api/messages", lambda n: {"channel_id": t.channel, "content": f"bench {n}"}
        ),
        204,
    ),
    Route(f"GET /api/channels ({LIST_CHANNELS} channels)", lambda t: get("/api/channels"), 200),
)


async def _create_channel(target: Target, name: str) -> str:
    status, body = await call(target, post("/api/channels/create", lambda n: {"name": name})(0))
    assert status == 201, body
    return str(json.loads(body)["channel_id"])


async def seed(target: Target) -> None:
    """A channel with HISTORY_MESSAGES messages and one task, and an empty one for the created
    tasks (the floor needs nothing)."""
    if target.name in BARE:
        return
    target.channel = await _create_channel(target, "bench")
    target.tasks_channel = await _create_channel(target, "bench-tasks")
    http = await Http.open(target.port)
    message = post("/api/messages", lambda n: {"channel_id": target.channel, "content": f"s{n}"})
    for n in range(HISTORY_MESSAGES):
        status, _ = await http.call(message(n))
        assert status == 204
    await http.stream.aclose()
    status, body = await call(target, post("/api/tasks", _task_body(target.channel))(0))
    assert status == 201, body
    target.task_id = int(json.loads(body)["id"])


async def settle(target: Target) -> None:
    """Wait until ours runs no agent (each stored message queues a run that fails at once
    without an image), so that no route is measured with the last one's runs still going."""
    if target.name != "ours":
        return
    with trio.fail_after(120):
        while True:
            status, body = await call(target, get("/api/channels")(0))
            assert status == 200, body
            if not any(channel.get("agent_running") for channel in json.loads(body)):
                return
            await trio.sleep(0.05)


async def add_channels(target: Target) -> None:
    if target.name not in BARE:
        for n in range(2, LIST_CHANNELS):  # the two of seed() make LIST_CHANNELS
            await _create_channel(target, f"more-{n:03d}")


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)


async def bench(options: argparse.Namespace, tmp: Path) -> Results:
    results = Results()
    async with trio.open_nursery() as nursery:
        targets = {name: await start(name, tmp, nursery) for name in TARGETS}
        try:
            for target in targets.values():
                await seed(target)
                await settle(target)
            for route in ROUTES:
                if route.name.endswith(f"({LIST_CHANNELS} channels)"):
                    for target in targets.values():
                        await add_channels(target)
                for round_no in range(options.rounds):
                    turn = round_no % len(TARGETS)
                    order = TARGETS[turn:] + TARGETS[:turn]
                    for name in order:
                        target = targets[name]
                        cpu_before = process_cpu_seconds(target.process.pid)
                        loop_before = main_thread_cpu_seconds(target.process.pid)
                        sample = await load(
                            target.port,
                            route.make(target),
                            route.status_for(target),
                            options.seconds,
                        )
                        cpu = process_cpu_seconds(target.process.pid) - cpu_before
                        loop = main_thread_cpu_seconds(target.process.pid) - loop_before
                        sample.cpu_us = cpu / max(sample.requests, 1) * 1e6
                        sample.loop_us = loop / max(sample.requests, 1) * 1e6
                        await settle(target)
                        results.samples.setdefault((route.name, name), []).append(sample)
                        print(
                            f"  {route.name:<34} {name:<5} {sample.rps:8.0f} req/s"
                            f"  p50 {sample.p50_ms:6.2f} ms  p99 {sample.p99_ms:6.2f} ms"
                            f"  CPU {sample.cpu_us:5.0f} µs/req (loop {sample.loop_us:5.0f})",
                            flush=True,
                        )
        finally:
            for target in targets.values():
                await stop(target)
            nursery.cancel_scope.cancel()
    return results


def table(results: Results) -> str:
    lines = [
        "| route | ours req/s | node req/s | floor req/s | ours/floor | ours/node "
        "| listener/floor | ours p50 / p99 ms | node p50 / p99 ms "
        "| CPU µs/req ours (its loop) / floor / node / listener |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for route in ROUTES:
        ours = results.samples[(route.name, "ours")]
        node = results.samples[(route.name, "node")]
        floor = results.samples[(route.name, "floor")]
        listener = results.samples[(route.name, "listener")]
        # Ratios per round (the pair measured back to back), then the median.
        vs_floor = statistics.median(o.rps / f.rps for o, f in zip(ours, floor, strict=True))
        vs_node = statistics.median(o.rps / n.rps for o, n in zip(ours, node, strict=True))
        bare = statistics.median(b.rps / f.rps for b, f in zip(listener, floor, strict=True))

        def med(samples: list[Sample], attr: str) -> float:
            return statistics.median(getattr(s, attr) for s in samples)

        lines.append(
            f"| {route.name} | {med(ours, 'rps'):.0f} | {med(node, 'rps'):.0f} "
            f"| {med(floor, 'rps'):.0f} | {vs_floor:.2f}× | {vs_node:.2f}× | {bare:.2f}× "
            f"| {med(ours, 'p50_ms'):.2f} / {med(ours, 'p99_ms'):.2f} "
            f"| {med(node, 'p50_ms'):.2f} / {med(node, 'p99_ms'):.2f} "
            f"| {med(ours, 'cpu_us'):.0f} ({med(ours, 'loop_us'):.0f}) "
            f"/ {med(floor, 'cpu_us'):.0f} / {med(node, 'cpu_us'):.0f} "
            f"/ {med(listener, 'cpu_us'):.0f} |"
        )
    return "\n".join(lines)


# -- profile mode ----------------------------------------------------------------------------

LAYERS = (
    ("hypercorn", "/hypercorn/"),
    ("h11", "/h11/"),
    ("quart / werkzeug / flask", ("/quart/", "/werkzeug/", "/flask/", "/quart_trio/")),
    ("loop_server.api", "/loop_server/api/"),
    ("loop_server.serving", "/loop_server/serving/"),
    ("loop_server.store", "/loop_server/store/"),
    ("loop_server (other)", "/loop_server/"),
    ("trio (scheduler, sockets, threads)", "/trio/"),
    ("json", "/json/"),
)


def _layer(filename: str, function: str) -> str:
    if filename == "~":
        if "sqlite3" in function:
            return "sqlite3 (C: SQL + fsync)"
        if "epoll" in function or "select" in function:
            return "epoll wait (idle)"
        if "acquire" in function or "wait" in function:
            return "thread waits"
        return "builtins (C)"
    for name, needle in LAYERS:
        needles = needle if isinstance(needle, tuple) else (needle,)
        if any(n in filename for n in needles):
            return name
    return "other Python"


def summarize_profile(path: Path, requests: int) -> list[tuple[str, float]]:
    stats = pstats.Stats(str(path))
    layers: dict[str, float] = {}
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        tottime = row[2]
        key = _layer(filename, function)
        layers[key] = layers.get(key, 0.0) + tottime
    layers.pop("epoll wait (idle)", None)
    return sorted(((k, v / requests * 1e6) for k, v in layers.items()), key=lambda kv: -kv[1])


async def profile(options: argparse.Namespace, tmp: Path) -> None:
    for name in ("floor", "ours"):
        for route in ROUTES[:7] if name == "ours" else ROUTES[:1]:
            run_dir = tmp / f"prof-{name}-{len(os.listdir(tmp))}"
            run_dir.mkdir()
            out = run_dir / "server.prof"
            async with trio.open_nursery() as nursery:
                target = await start(name, run_dir, nursery, profile_to=out)
                await seed(target)
                sample = await load(
                    target.port, route.make(target), route.status_for(target), options.seconds
                )
                await stop(target)
                nursery.cancel_scope.cancel()
            requests = int(sample.rps * (options.seconds - WARMUP))
            print(f"\n{name}: {route.name}: {sample.rps:.0f} req/s under cProfile")
            for layer, us in summarize_profile(out, requests)[:10]:
                print(f"  {layer:<36} {us:7.1f} µs/request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1.5 s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    if options.quick:
        options.rounds, options.seconds = 1, 1.5
    if not (PEER_DIR / "node_modules" / "better-sqlite3").is_dir():
        raise SystemExit("the Node peer is not installed: run `make bench-rest-peer` first")
    print(
        f"# {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    with tempfile.TemporaryDirectory(prefix="loop-bench-rest-") as tmp:
        if options.profile:
            trio.run(profile, options, Path(tmp))
            return
        results = trio.run(bench, options, Path(tmp))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
