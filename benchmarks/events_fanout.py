"""Events fan-out benchmark: loop-server's /api/ws against a Node `ws` peer and a bare-Trio floor.

    .venv/bin/python benchmarks/events_fanout.py            # full run, writes docs/benchmarks.md
    .venv/bin/python benchmarks/events_fanout.py --quick    # one short round, prints only

Three servers speak the same /api/ws subset (``?channels=``, the same envelope) and the same
control protocol (``PUB <n>`` publishes n ``message.created`` events on channel "bench", each
stamped with the monotonic clock in ``data.content``; ``STATS`` answers one JSON line):

* loop-server: ``serve()`` from loop_server.serving with a real ``EventsHub``; events go through
  ``broadcast_message_created`` exactly as the store-write path publishes them;
* node-ws: benchmarks/peers/ws_peer.js (``ws``, encode once, ``ws.send`` per client);
* trio-floor: benchmarks/peers/trio_floor.py (pre-framed bytes, one send_all per batch).

One load client (a separate process: raw sockets, epoll, frames counted by their headers, only
probe connections parse the timestamp) drives each of them identically:

1. idle latency: one event at a time, the next once every subscriber has it: publish→receive
   time of a single event's fan-out (p50/p99 over all deliveries);
2. throughput: K events in batches of B with at most W events in flight (closed loop, so a
   fast server is never penalised for a slower client, and queues stay under the hub's bound):
   deliveries per second, and publish→receive p50/p99 under that load (probes: every 10th
   connection).

Servers run alternately, several rounds, each run on a fresh server process; the figures are
medians. The server is pinned to CPU 0 and the client to CPU 1 (when there are two) so they do
not fight over a core. The "never reads" variant adds one subscriber with a 4 KiB receive buffer
that reads nothing until the end, then drains its socket and reports how it was closed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / "peers"
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Events fan-out"

SERVERS = ("loop-server", "node-ws", "trio-floor")
DEFAULT_ROUNDS = 5


# -- loop-server under test ------------------------------------------------------------------


def serve_loop_server() -> None:
    """The loop-server side: serve() + EventsHub + the control port (run in its own process)."""
    import trio
    from hypercorn.config import Config
    from quart_trio import QuartTrio

    from loop_server.domain import Message
    from loop_server.events import EventsHub
    from loop_server.serving import EventsEndpoint, serve

    hub = EventsHub()
    created_at = datetime.datetime.now(datetime.UTC)
    app = QuartTrio("bench")

    @app.get("/")
    async def index() -> str:
        return "bench"

    def publish(count: int) -> None:
        for _ in range(count):
            seq = hub.seq + 1
            hub.broadcast_message_created(
                Message(
                    id=seq,
                    channel_id="bench",
                    msg_id=f"m-{seq}",
                    author_id="bench",
                    author_name="bench",
                    content=str(time.monotonic_ns()),
                    is_bot=True,
                    is_processed=True,
                    created_at=created_at,
                )
            )

    async def control(stream: trio.SocketStream) -> None:
        buffer = b""
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.startswith(b"PUB "):
                    publish(int(line[4:]))
                elif line.strip() == b"STATS":
                    stats = hub.statistics()
                    answer = {
                        "cpu_s": _cpu_seconds(),
                        "subscribers": stats.subscribers,
                        "rss_kb": _rss_kb(),
                        "max_queue_depth": stats.max_queue_depth,
                        "slow_consumers_closed": stats.slow_consumers_closed,
                        "events_dropped": stats.events_dropped,
                    }
                    await stream.send_all(json.dumps(answer).encode() + b"\n")

    async def main() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = Config()
        config.accesslog = None
        config.errorlog = None
        # A long close timeout: the never-reading client drains its socket only at the end,
        # and should then still see the 4008 close frame.
        endpoint = EventsEndpoint(hub, lambda headers, query: True, close_timeout=120.0)
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: serve(
                    app,
                    config,
                    [sock],
                    endpoint,
                    shutdown_trigger=trio.sleep_forever,
                    task_status=task_status,
                )
            )
            listeners = await nursery.start(partial(trio.serve_tcp, control, 0, host="127.0.0.1"))
            control_port = listeners[0].socket.getsockname()[1]
            print(f"READY {sock.getsockname()[1]} {control_port}", flush=True)

    trio.run(main)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# -- the load client ---------------------------------------------------------------------


@dataclass(slots=True)
class Subscriber:
    sock: socket.socket
    probe: bool
    buffer: bytes = b""
    tail: bytes = b""
    frames: int = 0
    close_code: int | None = None
    closed: bool = False


_CONTENT = b'"content":"'
# Every event frame carries this exactly once: counting it with bytes.count (C speed) keeps the
# client far cheaper per delivery than any server, so it is not what is being measured.
_MARKER = b'"type":"message.created"'


def _count(sub: Subscriber, data: bytes) -> int:
    """Count events in ``sub``'s stream without parsing frames (non-probe connections)."""
    # Keep one byte less than the marker from the previous chunk: a marker split across two
    # reads is counted once, and no marker can be counted twice.
    window = sub.tail + data
    count = window.count(_MARKER)
    sub.tail = window[-(len(_MARKER) - 1) :]
    sub.frames += count
    return count


def _parse(sub: Subscriber, data: bytes, now: int, latencies: list[int] | None) -> int:
    """Parse ``sub``'s frames: count text frames, record publish→receive times when
    ``latencies`` is given, notice a close frame."""
    buf = sub.buffer + data if sub.buffer else data
    pos, size, count = 0, len(buf), 0
    while size - pos >= 2:
        length = buf[pos + 1]
        if length < 126:
            start = pos + 2
        elif length == 126:
            if size - pos < 4:
                break
            start, length = pos + 4, (buf[pos + 2] << 8) | buf[pos + 3]
        else:
            if size - pos < 10:
                break
            start, length = pos + 10, int.from_bytes(buf[pos + 2 : pos + 10], "big")
        end = start + length
        if end > size:
            break
        opcode = buf[pos] & 0x0F
        if opcode == 1:
            count += 1
            if latencies is not None:
                at = buf.find(_CONTENT, start, end)
                if at >= 0:
                    at += len(_CONTENT)
                    latencies.append(now - int(buf[at : buf.find(b'"', at, end)]))
        elif opcode == 8:
            sub.close_code = int.from_bytes(buf[start : start + 2], "big") if length >= 2 else 0
            sub.closed = True
        pos = end
    sub.buffer = buf[pos:] if pos < size else b""
    sub.frames += count
    return count


def _handshake(port: int, receive_buffer: int | None = None) -> tuple[socket.socket, bytes]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"GET /api/ws?channels=bench HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed during the handshake")
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.decode(errors="replace"))
    return sock, rest


class LoadClient:
    def __init__(self, port: int, control_port: int, subscribers: int, probe_every: int):
        self.subs: list[Subscriber] = []
        self.by_fd: dict[int, Subscriber] = {}
        self.poller = select.epoll()
        for index in range(subscribers):
            sock, rest = _handshake(port)
            sock.setblocking(False)
            sub = Subscriber(sock, probe=index % probe_every == 0)
            self.subs.append(sub)
            self.by_fd[sock.fileno()] = sub
            self.poller.register(sock.fileno(), select.EPOLLIN)
            if rest:
                _parse(sub, rest, time.monotonic_ns(), None)
        self.control = socket.create_connection(("127.0.0.1", control_port))
        self.control.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.received = sum(sub.frames for sub in self.subs)
        self.last_receive = 0

    def publish(self, count: int) -> None:
        self.control.sendall(b"PUB %d\n" % count)

    def stats(self) -> dict[str, Any]:
        self.control.sendall(b"STATS\n")
        buffer = b""
        while not buffer.endswith(b"\n"):
            buffer += self.control.recv(65536)
        answer: dict[str, Any] = json.loads(buffer)
        return answer

    def pump(self, latencies: list[int] | None, all_probe: bool, timeout: float) -> None:
        """Read whatever is ready. ``latencies`` collects probe timings (every connection's
        when ``all_probe``)."""
        by_fd = self.by_fd
        for fd, _ in self.poller.poll(timeout, 1024):
            sub = by_fd[fd]
            try:
                data = sub.sock.recv(1 << 18)
            except BlockingIOError:
                continue
            now = time.monotonic_ns()
            if not data:
                sub.closed = True
                self.poller.unregister(fd)
                continue
            probe = all_probe or sub.probe
            got = _parse(sub, data, now, latencies) if probe else _count(sub, data)
            if got:
                self.received += got
                self.last_receive = now
            if sub.closed:
                self.poller.unregister(fd)

    def active(self) -> int:
        return sum(1 for sub in self.subs if not sub.closed)

    def wait_received(self, target: int, deadline: float, latencies: list[int] | None) -> None:
        while self.received < target:
            self.check(deadline)
            self.pump(latencies, latencies is not None, 0.5)

    def check(self, deadline: float) -> None:
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"timed out after {self.received} deliveries")
        if self.last_receive and now - self.last_receive / 1e9 > 10:
            raise RuntimeError(f"nothing received for 10 s (after {self.received} deliveries)")


def _percentile(values: list[int], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6


def run_client(options: argparse.Namespace) -> dict[str, Any]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = options.subscribers
    deadline = time.monotonic() + options.timeout
    client = LoadClient(options.port, options.control_port, n, probe_every=10)
    never_reader: socket.socket | None = None
    if options.never_reader:
        never_reader, _ = _handshake(options.port, receive_buffer=4096)

    # Warm-up (not measured): caches, code paths, TCP windows.
    for _ in range(5):
        target = client.received + n
        client.publish(1)
        client.wait_received(target, deadline, None)

    idle: list[int] = []
    for _ in range(options.latency_events):
        target = client.received + n
        client.publish(1)
        client.wait_received(target, deadline, idle)

    loaded: list[int] = []
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    server_cpu_before = client.stats()["cpu_s"]
    start_received = client.received
    total = options.events
    published = 0
    started = time.monotonic_ns()
    while client.received - start_received < total * n:
        client.check(deadline)
        in_flight = published - (client.received - start_received) / n
        while published < total and in_flight < options.window:
            count = min(options.batch, total - published)
            client.publish(count)
            published += count
            in_flight += count
        client.pump(loaded, False, 0.5)
        if client.active() < n:
            raise RuntimeError(f"{n - client.active()} subscribers were closed by the server")
    elapsed = (client.last_receive - started) / 1e9
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = cpu_after.ru_utime - cpu_before.ru_utime + cpu_after.ru_stime - cpu_before.ru_stime
    server_stats = client.stats()
    server_cpu = server_stats["cpu_s"] - server_cpu_before

    result: dict[str, Any] = {
        "subscribers": n,
        "events": total,
        "deliveries": total * n,
        "elapsed_s": elapsed,
        "deliveries_per_s": total * n / elapsed,
        "idle_p50_ms": _percentile(idle, 0.50),
        "idle_p99_ms": _percentile(idle, 0.99),
        "load_p50_ms": _percentile(loaded, 0.50),
        "load_p99_ms": _percentile(loaded, 0.99),
        # Share of one core the client used: well under 1.0 means it was not the bottleneck.
        "client_cpu": client_cpu / elapsed,
        # The same for the server: near 1.0 means the server was the bottleneck.
        "server_cpu": server_cpu / elapsed,
        "server": server_stats,
    }
    if never_reader is not None:
        result["never_reader"] = _drain_never_reader(never_reader)
    return result


def _drain_never_reader(sock: socket.socket) -> dict[str, Any]:
    """Read what the stalled subscriber was sent, up to its close frame (or 3 s of silence)."""
    sub = Subscriber(sock, probe=False)
    sock.settimeout(3.0)
    with contextlib.suppress(OSError):
        while not sub.closed:
            data = sock.recv(1 << 18)
            if not data:
                break
            _parse(sub, data, 0, None)
    return {"frames": sub.frames, "close_code": sub.close_code}


# -- orchestration -------------------------------------------------------------------------


@dataclass
class Run:
    server: str
    subscribers: int
    never_reader: bool
    result: dict[str, Any] = field(default_factory=dict)


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})


@contextlib.contextmanager
def _server(name: str, pin: bool) -> Iterator[tuple[int, int]]:
    if name == "loop-server":
        command = [sys.executable, str(Path(__file__).resolve()), "serve-loop"]
    elif name == "node-ws":
        command = ["node", str(PEERS / "ws_peer.js")]
    else:
        command = [sys.executable, str(PEERS / "trio_floor.py")]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        preexec_fn=(lambda: _pin(0)) if pin else None,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"{name} did not start")
        yield int(line[1]), int(line[2])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run_one(run: Run, options: argparse.Namespace) -> None:
    with _server(run.server, options.pin) as (port, control_port):
        events = max(1, options.deliveries // run.subscribers)
        if run.never_reader:
            # Enough events to fill the stalled subscriber's socket buffers and then its queue.
            events = max(events, 2000)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "client",
            f"--port={port}",
            f"--control-port={control_port}",
            f"--subscribers={run.subscribers}",
            f"--events={events}",
            f"--latency-events={options.latency_events}",
            f"--window={options.window}",
            f"--batch={options.batch}",
            f"--timeout={options.timeout}",
        ]
        if run.never_reader:
            command.append("--never-reader")
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=options.timeout + 60,
            preexec_fn=(lambda: _pin(1)) if options.pin else None,
        )
        if completed.returncode != 0:
            run.result = {"error": completed.stderr.strip().splitlines()[-1:]}
            return
        run.result = json.loads(completed.stdout)


def _ensure_node_modules() -> None:
    if (PEERS / "node_modules" / "ws").is_dir():
        return
    if shutil.which("npm") is None:
        raise SystemExit("npm is needed for the Node peer (benchmarks/peers)")
    # The same as `make bench-peers`: better-sqlite3 (the other benchmark's peer) is compiled
    # against the system's Node headers.
    subprocess.run(["make", "bench-peers"], cwd=ROOT, check=True)


def _median(runs: list[Run], key: str) -> float:
    values = [r.result[key] for r in runs if key in r.result]
    return statistics.median(values) if values else float("nan")


def _summarise(runs: list[Run], options: argparse.Namespace) -> str:
    lines: list[str] = []
    for never_reader in (False, True):
        title = "one extra subscriber that never reads" if never_reader else "all subscribers read"
        lines.append(f"**{title}**\n")
        lines.append(
            "| N | server | deliveries/s | vs node-ws | idle p50 / p99 ms | "
            "loaded p50 / p99 ms | per server CPU-s | server / client CPU | server RSS MiB | "
            "never-reader |"
        )
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for n in options.subscribers:
            group = {
                name: [
                    r
                    for r in runs
                    if r.server == name and r.subscribers == n and r.never_reader == never_reader
                ]
                for name in SERVERS
            }
            peer_rate = _median(group["node-ws"], "deliveries_per_s")
            for name in SERVERS:
                chosen = group[name]
                failures = [r for r in chosen if "error" in r.result]
                rate = _median(chosen, "deliveries_per_s")
                rss = statistics.median(
                    [r.result["server"]["rss_kb"] / 1024 for r in chosen if "server" in r.result]
                    or [float("nan")]
                )
                fate = ""
                if never_reader:
                    codes = {
                        str(r.result["never_reader"]["close_code"])
                        for r in chosen
                        if "never_reader" in r.result
                    }
                    fate = (
                        "closed " + "/".join(sorted(codes)) if codes != {"None"} else "never closed"
                    )
                if failures:
                    fate += f" ({len(failures)} failed run(s))"
                idle = (
                    f"{_median(chosen, 'idle_p50_ms'):.2f} / {_median(chosen, 'idle_p99_ms'):.2f}"
                )
                load = (
                    f"{_median(chosen, 'load_p50_ms'):.2f} / {_median(chosen, 'load_p99_ms'):.2f}"
                )
                per_cpu = statistics.median(
                    [
                        r.result["deliveries_per_s"] / r.result["server_cpu"]
                        for r in chosen
                        if r.result.get("server_cpu")
                    ]
                    or [float("nan")]
                )
                lines.append(
                    f"| {n} | {name} | {rate:,.0f} | {rate / peer_rate:.2f}× | {idle} | {load} | "
                    f"{per_cpu:,.0f} | {_median(chosen, 'server_cpu'):.0%} / "
                    f"{_median(chosen, 'client_cpu'):.0%} | {rss:.0f} | {fate} |"
                )
        lines.append("")
    lines.append(
        "**effect of the never-reading subscriber on the others**: each server's two variants "
        "ran back to back; median over rounds of (with it ÷ without it)\n"
    )
    lines.append("| N | server | deliveries/s | idle p99 | loaded p99 |")
    lines.append("|---|---|---:|---:|---:|")
    keys = ("deliveries_per_s", "idle_p99_ms", "load_p99_ms")
    for n in options.subscribers:
        for name in SERVERS:
            cells = []
            for key in keys:
                ratio = _paired_ratio(runs, name, n, key)
                cells.append("n/a" if math.isnan(ratio) else f"{ratio:.2f}")
            lines.append(f"| {n} | {name} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def _verdict(runs: list[Run], options: argparse.Namespace) -> str:
    """What the figures say, in words, computed from the same medians as the tables."""

    def med(server: str, n: int, key: str, never_reader: bool = False) -> float:
        chosen = [
            r
            for r in runs
            if r.server == server and r.subscribers == n and r.never_reader == never_reader
        ]
        if key == "per_cpu":
            values = [
                r.result["deliveries_per_s"] / r.result["server_cpu"]
                for r in chosen
                if r.result.get("server_cpu")
            ]
            return statistics.median(values) if values else float("nan")
        return _median(chosen, key)

    parts = []
    for n in options.subscribers:
        rate = med("loop-server", n, "deliveries_per_s") / med("node-ws", n, "deliveries_per_s")
        per_cpu = med("loop-server", n, "per_cpu") / med("node-ws", n, "per_cpu")
        floor = med("loop-server", n, "per_cpu") / med("trio-floor", n, "per_cpu")
        idle = med("loop-server", n, "idle_p50_ms") / med("node-ws", n, "idle_p50_ms")
        parts.append(
            f"at N={n}, {rate:.1f}× the peer's deliveries/s ({per_cpu:.1f}× per server "
            f"CPU-second, {floor:.1f}× the floor's), idle p50 latency {idle:.2f}× the peer's"
        )
    stalled = [
        r
        for r in runs
        if r.server == "loop-server" and r.never_reader and "never_reader" in r.result
    ]
    closed = sum(1 for r in stalled if r.result["never_reader"]["close_code"] == 4008)
    return (
        "What this run says: loop-server reached "
        + "; ".join(parts)
        + f". The never-reading subscriber was closed with 4008 in {closed} of {len(stalled)} "
        "loop-server runs while every other subscriber received every event (a subscriber "
        "closed or missing events fails the run); the peer and the floor never closed it and "
        "buffer for it without bound. "
        + _stall_effect(runs, options)
        + " By construction the stalled client costs loop-server one parked writer task "
        "until its queue overflows, and nothing once it is closed."
    )


def _stall_effect(runs: list[Run], options: argparse.Namespace) -> str:
    """The target (a never-reading subscriber changes the others' p99 by < 10%), judged from
    the paired medians of the table, against how much the peer's own pairs move (the peer
    treats the stalled client like any other, so its ratios show the noise)."""

    ours, noise = [], []
    for n in options.subscribers:
        for key in ("idle_p99_ms", "load_p99_ms"):
            ours.append(abs(_paired_ratio(runs, "loop-server", n, key) - 1))
            noise.append(abs(_paired_ratio(runs, "node-ws", n, key) - 1))
    if not ours or any(math.isnan(x) for x in ours):
        return "The with/without pairs are incomplete: no verdict on the p99 effect."
    worst, peer_worst = max(ours), max(noise) if noise else float("nan")
    text = (
        f"With the never-reading subscriber, the others' p99 latency (idle and loaded, every N) "
        f"moved by at most {worst:.0%} for loop-server (median of paired ratios; the peer's own "
        f"pairs, where the stalled client is like any other, moved by up to {peer_worst:.0%})"
    )
    if worst < 0.10:
        return text + ": within the 10% target."
    if worst <= peer_worst:
        return text + ": no more than this machine's noise, which this run cannot resolve to 10%."
    return text + ": outside the 10% target."


def _paired_ratio(runs: list[Run], server: str, n: int, key: str) -> float:
    """Median over back-to-back pairs of (with the never-reader ÷ without it); NaN: no pair."""
    pairs = _pairs([r for r in runs if r.server == server and r.subscribers == n])
    ratios = [stalled.result[key] / clean.result[key] for clean, stalled in pairs]
    return statistics.median(ratios) if ratios else float("nan")


def _pairs(runs: list[Run]) -> list[tuple[Run, Run]]:
    """(without, with) pairs of runs made back to back, in the order they ran."""
    pairs: list[tuple[Run, Run]] = []
    index = 0
    while index + 1 < len(runs):
        first, second = runs[index], runs[index + 1]
        if first.never_reader != second.never_reader:
            if "error" not in first.result and "error" not in second.result:
                pairs.append((second, first) if first.never_reader else (first, second))
            index += 2
        else:
            index += 1
    return pairs


def _machine() -> str:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return (
        f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, Node {node}, ws 8.23.0"
    )


def _write_docs(body: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    start = text.find(SECTION)
    if start >= 0:
        # Replace only our section: up to the next "## " heading, if any.
        following = text.find("\n## ", start + len(SECTION))
        end = len(text) if following < 0 else following + 1
        text = text[:start] + body + ("\n" if following >= 0 else "") + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + body
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text)


def orchestrate(options: argparse.Namespace) -> None:
    if options.from_json:
        saved = json.loads(Path(options.from_json).read_text())
        runs = [Run(r["server"], r["subscribers"], r["never_reader"], r["result"]) for r in saved]
        _report(runs, options)
        return
    # A terminated benchmark still stops the servers it started (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    _ensure_node_modules()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    runs: list[Run] = []
    for n in options.subscribers:
        for round_number in range(options.rounds):
            # Rotate the server order each round so none always runs first (or last), and run
            # each server's two variants back to back (alternating which goes first) so that
            # the comparison with and without the stalled client sees the same neighbours.
            shift = round_number % len(SERVERS)
            variants = (False, True) if round_number % 2 == 0 else (True, False)
            for name in SERVERS[shift:] + SERVERS[:shift]:
                for never_reader in variants:
                    run = Run(name, n, never_reader)
                    _run_one(run, options)
                    runs.append(run)
                    _print_run(run)
    if options.save_json:
        Path(options.save_json).write_text(
            json.dumps([r.__dict__ for r in runs], indent=1, default=str)
        )
    _report(runs, options)


def _print_run(run: Run) -> None:
    r = run.result
    label = f"N={run.subscribers} never-reader={run.never_reader} {run.server}"
    if "error" in r:
        print(f"{label}: FAILED {r['error']}", flush=True)
        return
    print(
        f"{label}: {r['deliveries_per_s']:,.0f}/s "
        f"idle p50/p99 {r['idle_p50_ms']:.2f}/{r['idle_p99_ms']:.2f} ms "
        f"load p50/p99 {r['load_p50_ms']:.2f}/{r['load_p99_ms']:.2f} ms "
        f"cpu server/client {r['server_cpu']:.0%}/{r['client_cpu']:.0%} "
        f"{r.get('never_reader', '')}",
        flush=True,
    )


def _report(runs: list[Run], options: argparse.Namespace) -> None:
    table = _summarise(runs, options)
    print()
    print(table)
    if options.quick:
        return
    command = "python benchmarks/events_fanout.py"
    if options.rounds != DEFAULT_ROUNDS:
        command += f" --rounds {options.rounds}"
    body = (
        f"{SECTION}\n\n"
        f"Measured {datetime.date.today().isoformat()} on {_machine()}; server pinned to CPU 0, "
        "load client to CPU 1.\n\n"
        f"Command: `.venv/bin/{command}` ({options.rounds} rounds, servers alternating, "
        f"fresh server per run, medians; {options.deliveries:,} deliveries per throughput run, "
        f"window {options.window} events, batches of {options.batch}; "
        f"{options.latency_events} single events for the idle latency).\n\n"
        "*idle* = one event at a time, publish→receive over every subscriber; *loaded* = "
        "during the throughput run (every 10th subscriber). *server / client CPU* = share of "
        "one core each used during the throughput run, and *per server CPU-s* = deliveries per "
        "second of server CPU time: the steadier figure on a shared, noisy machine (other "
        "sessions' jobs run on the same two cores). A server well under 100% CPU was held back "
        "by the load client, the window or a neighbour, so its deliveries/s is a lower bound. The "
        "never-reading subscriber has a 4 KiB receive buffer and reads only after the run; "
        "loop-server closes it with 4008 once its queue (256 events) is full, while the Node "
        "peer and the floor have no such bound and buffer for it without limit.\n\n"
        "trio-floor is a bare Trio server written for the comparison (a writer task per "
        "connection, one `send_all` per batch of pre-framed bytes). loop-server's hub has the "
        "same shape (a memory channel and a writer task per connection, docs/events.md), plus "
        "what the floor lacks: filters, replay, coalescing and the slow-consumer bound.\n\n"
        f"{table.rstrip()}\n\n{_verdict(runs, options)}\n"
    )
    _write_docs(body)
    print(f"wrote {DOCS.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve-loop", help="(internal) run the loop-server side")
    client = sub.add_parser("client", help="(internal) run the load client")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--control-port", type=int, required=True)
    client.add_argument("--subscribers", type=int, required=True)
    client.add_argument("--events", type=int, required=True)
    client.add_argument("--latency-events", type=int, default=100)
    client.add_argument("--window", type=int, default=64)
    client.add_argument("--batch", type=int, default=16)
    client.add_argument("--timeout", type=float, default=300)
    client.add_argument("--never-reader", action="store_true")
    parser.add_argument("--quick", action="store_true", help="one short round, docs untouched")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--latency-events", type=int, default=100)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    parser.add_argument("--save-json", help="also keep every run's figures in this file")
    parser.add_argument("--from-json", help="rewrite the report from a --save-json file")
    options = parser.parse_args()
    if options.command == "serve-loop":
        serve_loop_server()
    elif options.command == "client":
        print(json.dumps(run_client(options)))
    else:
        if options.quick:
            options.rounds = 1
            options.deliveries = min(options.deliveries, 200_000)
            options.latency_events = min(options.latency_events, 30)
        orchestrate(options)


if __name__ == "__main__":
    main()
