"""Soak: mixed REST + events (+ terminal) load at a modest rate against a real server process.

    .venv/bin/python benchmarks/soak.py                    # 30 minutes, prints the figures
    .venv/bin/python benchmarks/soak.py --minutes 1 --write   # also writes docs/benchmarks.md
    .venv/bin/python benchmarks/soak.py --minutes 0.2      # a quick check (~15 s)

What runs: ``loop-server serve`` (the CLI with this interpreter, or ``--binary PATH``) on
127.0.0.1 with a temp data dir. An open-loop scheduler starts ``--rate`` REST operations a second
drawn from a fixed mix (history pages, channel listings, messages, task create/patch/delete,
threads and channels created and deleted, memory search, README, health), each checked
against the status it must answer. ``--subscribers`` clients stay on ``/api/ws`` the whole time
and one more reconnects every 2 s with ``?since=<seq>&hello=1`` (replay). Once
``/api/ws/terminal`` answers an upgrade and Docker is in use, a terminal cycle (create a shell
in a channel container, echo a marker, stop) runs every ``--terminal-interval`` seconds;
otherwise terminal load is skipped and the report says why.

Docker (``--docker auto|on|off``, default auto: on when the engine answers and has the
``loop-test`` image): agent runs and terminals use that image (the claude stub) with
``--network none``; off: ``DOCKER_HOST`` points at a socket nobody serves, so every agent run
fails at once with a clear error (still a store write and events).

Reported: requests and errors per operation (an error is a transport failure or an unexpected
status), p50/p99 latency, events received, unexpected WebSocket closes, the server's RSS (its
process and children, from /proc) after warm-up, at the end and its slope, open file
descriptors, and how long the final SIGTERM took. Every request goes to loopback only; every
loop is bounded by the run's duration; the server and any container made for the run's
channels are removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import json
import os
import platform
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    open_websocket_url,
)

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Soak"
TEST_IMAGE = "loop-test:latest"
STUB_CLAUDE = "/usr/local/bin/claude"
CHANNELS = 4
MAX_IN_FLIGHT = 64
ERROR_SAMPLES = 10

# -- the server process ------------------------------------------------------------------------


@dataclass
class Server:
    process: trio.Process
    url: str
    port: int
    log: bytearray


async def _read_log(process: trio.Process, log: bytearray, started: trio.Event) -> None:
    assert process.stderr is not None
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while chunk := await process.stderr.receive_some(65536):
            log += chunk
            if b"api server started addr=" in log:
                started.set()
            if len(log) > 4 << 20:  # keep the tail only: a long soak logs a lot
                del log[: len(log) - (1 << 20)]
    started.set()


async def start_server(nursery: trio.Nursery, argv: list[str], env: dict[str, str]) -> Server:
    process = await trio.lowlevel.open_process(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    log = bytearray()
    started = trio.Event()
    nursery.start_soon(_read_log, process, log, started)
    with trio.fail_after(60):
        await started.wait()
    match = re.search(rb"api server started addr=(\S+)", log)
    if match is None:
        process.kill()
        raise SystemExit(f"the server did not start:\n{log.decode(errors='replace')}")
    url = match.group(1).decode()
    return Server(process, url, int(url.rsplit(":", 1)[1]), log)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a one-file binary runs the server as a child)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                queue += [int(child) for child in children]
    return found


def sample_process(pid: int) -> tuple[int, int]:
    """(RSS in bytes, open file descriptors) of the server's process tree."""
    rss = fds = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
            fds += len(os.listdir(f"/proc/{member}/fd"))
    return rss, fds


# -- statistics --------------------------------------------------------------------------------


@dataclass
class OpStats:
    count: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, successful calls


@dataclass
class Stats:
    ops: dict[str, OpStats] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    shed: int = 0  # operations not started because MAX_IN_FLIGHT were still open
    events: int = 0
    ws_unexpected_closes: int = 0
    ws_reconnects: int = 0
    replays: int = 0
    replay_errors: int = 0
    terminal_cycles: int = 0
    terminal_note: str = ""
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, rss, fds)

    def op(self, name: str) -> OpStats:
        return self.ops.setdefault(name, OpStats())

    def ok(self, name: str, seconds: float) -> None:
        stats = self.op(name)
        stats.count += 1
        stats.latencies.append(seconds)

    def error(self, name: str, what: str) -> None:
        stats = self.op(name)
        stats.count += 1
        stats.errors += 1
        if len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(f"{name}: {what}")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- REST load ---------------------------------------------------------------------------------


@dataclass
class World:
    """What the load has created and may touch next."""

    channels: list[str]
    tasks: list[int] = field(default_factory=list)
    counter: int = 0
    has_commands: bool = False

    def next(self) -> int:
        self.counter += 1
        return self.counter

    def channel(self) -> str:
        return self.channels[self.counter % len(self.channels)]


Op = Callable[[httpx.AsyncClient, World], Awaitable[tuple[int, set[int]]]]


async def op_health(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    return (await http.get("/api/health")).status_code, {200}


async def op_channels(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    return (await http.get("/api/channels")).status_code, {200}


async def op_history(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    response = await http.get(f"/api/channels/{world.channel()}/messages", params={"limit": 50})
    return response.status_code, {200}


async def op_message(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    body = {"channel_id": world.channel(), "content": f"soak message {world.next()}"}
    return (await http.post("/api/messages", json=body)).status_code, {204}


async def op_task_create(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    body = {
        "channel_id": world.channel(),
        "schedule": "1h",
        "type": "interval",
        "prompt": f"soak task {world.next()}",
    }
    response = await http.post("/api/tasks", json=body)
    if response.status_code == 201:
        world.tasks.append(response.json()["id"])
    return response.status_code, {201}


async def op_task_delete(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    if len(world.tasks) < 10:  # keep a small pool for the other task operations
        return await op_task_create(http, world)
    task_id = world.tasks.pop(0)
    return (await http.delete(f"/api/tasks/{task_id}")).status_code, {204}


async def op_task_patch(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    if not world.tasks:
        return await op_task_create(http, world)
    task_id = world.tasks[world.next() % len(world.tasks)]
    body = {"enabled": world.counter % 2 == 0}
    # A concurrent delete may have removed it: enabling an unknown id is upstream's silent 200.
    return (await http.patch(f"/api/tasks/{task_id}", json=body)).status_code, {200, 404}


async def op_task_get(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    if not world.tasks:
        return await op_task_create(http, world)
    task_id = world.tasks[world.next() % len(world.tasks)]
    return (await http.get(f"/api/tasks/{task_id}")).status_code, {200, 404}


async def op_task_list(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    response = await http.get("/api/tasks", params={"channel_id": world.channel()})
    return response.status_code, {200}


async def op_task_runs(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    if not world.tasks:
        return await op_task_create(http, world)
    task_id = world.tasks[world.next() % len(world.tasks)]
    return (await http.get(f"/api/tasks/{task_id}/runs")).status_code, {200, 404}


async def op_thread(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    body = {"channel_id": world.channel(), "name": f"soak thread {world.next()}"}
    created = await http.post("/api/threads", json=body)
    if created.status_code != 201:
        return created.status_code, {201}
    thread_id = created.json()["thread_id"]
    return (await http.delete(f"/api/threads/{thread_id}")).status_code, {204}


async def op_channel(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    created = await http.post("/api/channels/create", json={"name": f"soak-{world.next()}"})
    if created.status_code != 201:
        return created.status_code, {201}
    channel_id = created.json()["channel_id"]
    return (await http.delete(f"/api/channels/{channel_id}")).status_code, {204}


async def op_memory(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    body = {"query": "soak notes", "channel_id": world.channel()}
    # 501 when the memory index is disabled (no FTS5): still a clear answer.
    return (await http.post("/api/memory/search", json=body)).status_code, {200, 501}


async def op_readme(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    return (await http.get("/api/readme")).status_code, {200}


async def op_command(http: httpx.AsyncClient, world: World) -> tuple[int, set[int]]:
    if not world.has_commands:
        return await op_health(http, world)
    body = {"channel_id": world.channel(), "command": "tasks"}
    return (await http.post("/api/commands", json=body)).status_code, {204}


#: The mix, by weight (each entry's share of ``--rate``).
MIX: list[tuple[str, Op, int]] = [
    ("GET history", op_history, 5),
    ("GET channels", op_channels, 3),
    ("GET health", op_health, 1),
    ("POST message", op_message, 2),
    ("POST task", op_task_create, 1),
    ("DELETE task", op_task_delete, 1),
    ("PATCH task", op_task_patch, 1),
    ("GET task", op_task_get, 1),
    ("GET tasks", op_task_list, 1),
    ("GET task runs", op_task_runs, 1),
    ("thread create+delete", op_thread, 1),
    ("channel create+delete", op_channel, 1),
    ("POST memory/search", op_memory, 1),
    ("GET readme", op_readme, 1),
    ("POST command", op_command, 1),
]


async def run_op(
    name: str, op: Op, http: httpx.AsyncClient, world: World, stats: Stats, limiter: trio.Semaphore
) -> None:
    try:
        started = time.perf_counter()
        try:
            status, expected = await op(http, world)
        except httpx.HTTPError as err:
            stats.error(name, f"{type(err).__name__}: {err}")
            return
        if status in expected:
            stats.ok(name, time.perf_counter() - started)
        else:
            stats.error(name, f"status {status}")
    finally:
        limiter.release()


async def rest_load(
    http: httpx.AsyncClient, world: World, stats: Stats, rate: float, until: float
) -> None:
    """Open loop: an operation every 1/rate seconds whatever the answers' speed, so a slow
    server shows up as latency (and ``shed``), not as a lower offered load."""
    schedule = [(name, op) for name, op, weight in MIX for _ in range(weight)]
    limiter = trio.Semaphore(MAX_IN_FLIGHT)
    interval = 1 / rate
    next_at = trio.current_time()
    async with trio.open_nursery() as nursery:
        for n in range(int((until - next_at) * rate) + 1):
            if next_at >= until:
                break
            await trio.sleep_until(next_at)
            next_at += interval
            name, op = schedule[n % len(schedule)]
            try:
                limiter.acquire_nowait()
            except trio.WouldBlock:
                stats.shed += 1
                continue
            nursery.start_soon(run_op, name, op, http, world, stats, limiter)


# -- events load -------------------------------------------------------------------------------


async def subscriber(url: str, stats: Stats, until: float, last_seq: list[int]) -> None:
    """One client on /api/ws for the whole run; reconnects (with replay) if closed early."""
    for _ in range(1000):
        if trio.current_time() >= until:
            return
        resource = f"{url}/api/ws" + (f"?since={last_seq[0]}" if last_seq[0] else "")
        try:
            async with open_websocket_url(resource) as ws:
                with trio.move_on_at(until):
                    while True:
                        event = json.loads(await ws.get_message())
                        stats.events += 1
                        if isinstance(event.get("seq"), int):
                            last_seq[0] = max(last_seq[0], event["seq"])
                return
        except (ConnectionClosed, HandshakeError, OSError) as err:
            if trio.current_time() >= until:
                return
            stats.ws_unexpected_closes += 1
            stats.error("events socket", f"{type(err).__name__}: {err}")
            stats.ws_reconnects += 1
            await trio.sleep(0.5)


async def replay_churn(url: str, stats: Stats, until: float, last_seq: list[int]) -> None:
    """Every 2 s: connect with ?since=<seq>&hello=1, read the hello, leave."""
    while trio.current_time() + 2 < until:
        await trio.sleep(2)
        since = max(0, last_seq[0] - 20)
        started = time.perf_counter()
        try:
            with trio.fail_after(10):
                async with open_websocket_url(f"{url}/api/ws?since={since}&hello=1") as ws:
                    hello = json.loads(await ws.get_message())
            if hello.get("type") != "hello":
                stats.replay_errors += 1
                stats.error("events replay", f"first frame {hello!r}")
                continue
            stats.replays += 1
            stats.ok("events replay connect", time.perf_counter() - started)
        except (ConnectionClosed, HandshakeError, OSError, trio.TooSlowError) as err:
            stats.replay_errors += 1
            stats.error("events replay", f"{type(err).__name__}: {err}")


# -- terminal load -----------------------------------------------------------------------------


async def terminal_available(url: str) -> str:
    """'' when /api/ws/terminal upgrades, else why not."""
    try:
        with trio.fail_after(10):
            async with open_websocket_url(f"{url}/api/ws/terminal"):
                return ""
    except ConnectionRejected as err:
        return f"/api/ws/terminal answers {err.status_code}"
    except HandshakeError as err:
        return f"/api/ws/terminal did not upgrade ({type(err).__name__})"
    except (ConnectionClosed, OSError, trio.TooSlowError) as err:
        return f"/api/ws/terminal failed ({type(err).__name__})"


async def terminal_cycle(url: str, channel_id: str, n: int) -> None:
    marker = f"soak-terminal-{n}"
    async with open_websocket_url(f"{url}/api/ws/terminal") as ws:
        await ws.send_message(
            json.dumps({"type": "create", "channel_id": channel_id, "cmd": ["/bin/sh"]})
        )
        output = b""
        while True:
            message = await ws.get_message()
            if isinstance(message, str):
                status = json.loads(message)
                if status["type"] == "error":
                    raise RuntimeError(f"create: {status}")
                if status["type"] == "created":
                    break
        # The shell computes the marker, so the terminal's echo of what we typed cannot match.
        data = base64.b64encode(f"echo soak-terminal-$(({n} + 0))\n".encode()).decode()
        await ws.send_message(json.dumps({"type": "input", "data": data}))
        while (marker + "\r\n").encode() not in output and (marker + "\n").encode() not in output:
            message = await ws.get_message()
            if isinstance(message, bytes):
                output += message
        await ws.send_message(json.dumps({"type": "stop"}))
        while True:
            message = await ws.get_message()
            if isinstance(message, str) and json.loads(message)["type"] in ("stopped", "error"):
                return


async def terminal_load(
    url: str, world: World, stats: Stats, interval: float, until: float
) -> None:
    n = 0
    while trio.current_time() + interval < until:
        await trio.sleep(interval)
        n += 1
        started = time.perf_counter()
        try:
            with trio.fail_after(30):
                await terminal_cycle(url, world.channels[n % len(world.channels)], n)
            stats.terminal_cycles += 1
            stats.ok("terminal cycle", time.perf_counter() - started)
        except (ConnectionClosed, HandshakeError, OSError, RuntimeError, trio.TooSlowError) as err:
            stats.error("terminal cycle", f"{type(err).__name__}: {err}")


# -- sampling ----------------------------------------------------------------------------------


async def sampler(pid: int, stats: Stats, interval: float, started: float, until: float) -> None:
    while True:
        rss, fds = sample_process(pid)
        stats.samples.append((trio.current_time() - started, rss, fds))
        if trio.current_time() + interval > until:
            return
        await trio.sleep(interval)


# -- docker ------------------------------------------------------------------------------------


def docker_ready() -> str:
    """'' when the engine answers and has the test image, else why not."""
    try:
        import docker
        import docker.errors

        client = docker.from_env(timeout=10)
    except Exception as err:
        return f"no Docker engine ({type(err).__name__})"
    try:
        client.images.get(TEST_IMAGE)
        return ""
    except docker.errors.ImageNotFound:
        return f"no {TEST_IMAGE} image (scripts/docker-env.sh imports it)"
    except Exception as err:
        return f"Docker engine not usable ({type(err).__name__}: {err})"
    finally:
        client.close()


def remove_containers(channels: list[str]) -> int:
    """Force-remove containers of the run's channels (terminal shells outlive their session)."""
    import docker

    removed = 0
    client = docker.from_env(timeout=30)
    try:
        for channel_id in channels:
            filters = {"label": f"loop-channel={channel_id}"}
            for container in client.containers.list(all=True, filters=filters):
                with contextlib.suppress(Exception):
                    container.remove(force=True)
                    removed += 1
    finally:
        client.close()
    return removed


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Result:
    options: argparse.Namespace
    stats: Stats
    seconds: float
    docker_note: str
    exit_code: int | None
    stop_seconds: float
    integrity: str


def server_env(tmp: Path, docker: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOP_")}
    env["HOME"] = str(tmp / "home")
    env["LOOP_GRACEFUL_TIMEOUT"] = "10"
    if docker:
        env.update(
            LOOP_CONTAINER_IMAGE=TEST_IMAGE,
            LOOP_CLAUDE_BIN=STUB_CLAUDE,
            LOOP_CONTAINER_NETWORK="none",
            LOOP_CONTAINER_TIMEOUT="60",
        )
    else:
        env["DOCKER_HOST"] = f"unix://{tmp / 'no-docker.sock'}"
    return env


async def soak(options: argparse.Namespace, tmp: Path) -> Result:
    stats = Stats()
    docker_note = ""
    use_docker = options.docker == "on"
    if options.docker == "auto":
        docker_note = await trio.to_thread.run_sync(docker_ready)
        use_docker = not docker_note
    (tmp / "home").mkdir()
    data_dir = tmp / "data"
    command = [options.binary] if options.binary else [sys.executable, "-m", "loop_server"]
    argv = [*command, "serve", "--addr", "127.0.0.1:0", "--data-dir", str(data_dir)]
    duration = options.minutes * 60
    world = World(channels=[])
    exit_code: int | None = None
    stop_seconds = float("nan")
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, argv, server_env(tmp, use_docker))
        try:
            limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=16)
            async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
                for i in range(CHANNELS):
                    created = await http.post("/api/channels/create", json={"name": f"soak{i}"})
                    world.channels.append(created.json()["channel_id"])
                probe = await http.post(
                    "/api/commands", json={"channel_id": world.channels[0], "command": "status"}
                )
                world.has_commands = probe.status_code == 204
                ws_base = "ws://" + server.url.split("://", 1)[1]
                started = trio.current_time()
                until = started + duration
                warm_interval = min(options.sample_interval, max(duration / 20, 0.5))
                async with trio.open_nursery() as load:
                    load.start_soon(
                        sampler, server.process.pid, stats, warm_interval, started, until
                    )
                    load.start_soon(rest_load, http, world, stats, options.rate, until)
                    last_seq = [0]
                    for _ in range(options.subscribers):
                        load.start_soon(subscriber, ws_base, stats, until, last_seq)
                    load.start_soon(replay_churn, ws_base, stats, until, last_seq)
                    if not use_docker:
                        stats.terminal_note = f"skipped: Docker not in use ({docker_note or 'off'})"
                    elif why := await terminal_available(ws_base):
                        stats.terminal_note = f"skipped: {why}"
                    else:
                        load.start_soon(
                            terminal_load,
                            ws_base,
                            world,
                            stats,
                            options.terminal_interval,
                            until,
                        )
                seconds = trio.current_time() - started
            stopping = trio.current_time()
            server.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(60):
                exit_code = await server.process.wait()
            stop_seconds = trio.current_time() - stopping
        finally:
            if server.process.returncode is None:
                server.process.kill()
                await server.process.wait()
            if use_docker:
                await trio.to_thread.run_sync(remove_containers, world.channels)
    with contextlib.closing(sqlite3.connect(data_dir / "loop.db")) as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    if exit_code != 0:
        print(server.log.decode(errors="replace")[-3000:], file=sys.stderr)
    note = "" if use_docker else docker_note or "off"
    return Result(options, stats, seconds, note, exit_code, stop_seconds, integrity)


# -- the report --------------------------------------------------------------------------------


def slope_mb_per_hour(points: list[tuple[float, int]]) -> float:
    if len(points) < 3:
        return float("nan")
    xs = [t for t, _ in points]
    ys = [rss / 2**20 for _, rss in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return float("nan")
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var * 3600


def report(result: Result, command: str) -> str:
    stats = result.stats
    samples = stats.samples
    warm_up = max(result.seconds * 0.1, min(60.0, result.seconds * 0.25))
    after = [s for s in samples if s[0] >= warm_up] or samples
    mib = 2**20
    total = sum(s.count for s in stats.ops.values())
    errors = sum(s.errors for s in stats.ops.values())
    rest = [
        x
        for name, s in stats.ops.items()
        if not name.startswith(("events", "terminal"))
        for x in s.latencies
    ]
    server = f"the binary {result.options.binary}" if result.options.binary else "the CLI"
    docker = "off: " + result.docker_note if result.docker_note else "on (loop-test, no network)"
    lines = [
        SECTION,
        "",
        "Claim: under a steady mixed load the server's memory levels off (no growth per request),",
        "nothing fails, and SIGTERM still stops it promptly at the end.",
        "",
        f"Command: `{command}`. Machine: {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release().split('-')[0]} {platform.machine()}, Python "
        f"{platform.python_version()}. Date: {datetime.date.today().isoformat()}. "
        f"Server: {server} on 127.0.0.1; Docker: {docker}.",
        "",
        "| measure | figure |",
        "|---|---:|",
        f"| duration | {result.seconds:.0f} s |",
        f"| offered REST rate | {result.options.rate:g} ops/s |",
        f"| operations (REST, replay connects, terminal cycles) | {total} |",
        f"| errors | {errors} |",
        f"| shed (over {MAX_IN_FLIGHT} in flight) | {stats.shed} |",
        f"| REST latency p50 / p99 | {percentile(rest, 0.5) * 1000:.1f} / "
        f"{percentile(rest, 0.99) * 1000:.1f} ms |",
        f"| events received ({result.options.subscribers} subscribers) | {stats.events} |",
        f"| unexpected event-socket closes | {stats.ws_unexpected_closes} |",
        f"| replay reconnects (ok / failed) | {stats.replays} / {stats.replay_errors} |",
        f"| terminal cycles | {stats.terminal_cycles or stats.terminal_note} |",
    ]
    if samples:
        (warm_t, first_rss, first_fds), (_, last_rss, last_fds) = after[0], samples[-1]
        slope = slope_mb_per_hour([(t, rss) for t, rss, _ in after])
        slope_text = f"{slope:+.1f} MiB/h" if result.seconds >= 300 else "n/a (run < 5 min)"
        lines += [
            f"| RSS after warm-up ({warm_t:.0f} s) → end | {first_rss / mib:.1f} → "
            f"{last_rss / mib:.1f} MiB |",
            f"| RSS growth after warm-up | {(last_rss - first_rss) / mib:+.1f} MiB |",
            f"| RSS peak | {max(r for _, r, _ in samples) / mib:.1f} MiB |",
            f"| RSS slope after warm-up (least squares) | {slope_text} |",
            f"| open fds after warm-up → end | {first_fds} → {last_fds} |",
        ]
        # The curve, not just its ends: does it level off?
        tenths = [samples[min(len(samples) - 1, i * len(samples) // 10)] for i in range(10)]
        curve = ", ".join(f"{rss / mib:.1f}" for _, rss, _ in [*tenths, samples[-1]])
        lines.append(f"| RSS at each tenth of the run, MiB | {curve} |")
    lines += [
        f"| SIGTERM → exit | {result.stop_seconds:.2f} s, code {result.exit_code} |",
        f"| `PRAGMA integrity_check` after | {result.integrity} |",
        "",
        "| operation | count | errors | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in sorted(stats.ops.items()):
        lines.append(
            f"| {name} | {s.count} | {s.errors} | {percentile(s.latencies, 0.5) * 1000:.1f} | "
            f"{percentile(s.latencies, 0.99) * 1000:.1f} |"
        )
    if stats.error_samples:
        lines += ["", "First errors:", "", *[f"* `{e}`" for e in stats.error_samples]]
    return "\n".join(lines) + "\n"


def write_docs(section: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    start = text.find(SECTION + "\n")
    if start >= 0:  # replace only our section: up to the next "## " heading, if any
        following = text.find("\n## ", start + len(SECTION))
        end = len(text) if following < 0 else following + 1
        text = text[:start] + section + ("\n" if following >= 0 else "") + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30, help="length of the run (default 30)")
    parser.add_argument("--rate", type=float, default=10, help="REST operations a second (10)")
    parser.add_argument("--subscribers", type=int, default=4, help="clients on /api/ws (4)")
    parser.add_argument("--terminal-interval", type=float, default=5, help="seconds (5)")
    parser.add_argument("--sample-interval", type=float, default=5, help="RSS sampling (5 s)")
    parser.add_argument("--docker", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--binary", help="soak this executable (e.g. dist/loop-server)")
    parser.add_argument("--write", action="store_true", help=f"write {SECTION} to docs/")
    options = parser.parse_args()
    if options.minutes <= 0 or options.rate <= 0:
        parser.error("--minutes and --rate must be positive")
    if options.binary:
        options.binary = str(Path(options.binary).resolve())
    command = "benchmarks/soak.py " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="loop-soak-") as tmp:
        result = trio.run(soak, options, Path(tmp))
    section = report(result, f".venv/bin/python {command.strip()}")
    print(section)
    if options.write:
        write_docs(section)
        print(f"wrote {DOCS.relative_to(ROOT)}")
    failed = (
        result.exit_code != 0
        or result.integrity != "ok"
        or any(s.errors for s in result.stats.ops.values())
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
