"""Events on the user's path: REST writes stored, then delivered to N WebSocket subscribers.

    .venv/bin/python benchmarks/events_user_path.py           # full run, writes the docs
    .venv/bin/python benchmarks/events_user_path.py --quick   # one short round, prints only

What is measured is what a user's write costs end to end: ``POST /api/messages`` (no agent: the
server's Docker engine is a socket nobody serves, so each queued run fails at once, as on a
machine without Docker) or ``POST /api/commands`` (``tasks``: a bot reply is stored) — each
answered only once stored — then the ``message.created`` frame on every one of N subscribers
of the channel (``/api/ws?channels=<id>``). 8 writers, each on its own keep-alive connection,
write one at a time (closed loop). Three servers, fresh process per run, alternating, several
rounds, medians:

* loop-server: ``python -m loop_server serve`` with a temp data dir (SQLite, WAL, one writer);
* node-sqlite: benchmarks/peers/rest_peer.js --persist — http + ws + better-sqlite3, WAL,
  ``synchronous=FULL``, one transaction per write (the claudecodeui stack);
* node-ws: the same peer without storage (transport only).

Reported per run: deliveries/s (writes × N ÷ time until the last frame arrived), write→receive
p50/p99 (the write's start, stamped in its content, to each probe subscriber's receipt; every
10th subscriber is a probe; ``/api/messages`` only, a command's reply carries no stamp), and the
server's CPU time per delivery. Server pinned to CPU 0, client to CPU 1.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import resource
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import process_cpu_seconds
from events_fanout import (
    PEERS,
    ROOT,
    Subscriber,
    _machine,
    _percentile,
    _pin,
    _write_docs,
)

SECTION = "## Events on the user's path"
SERVERS = ("loop-server", "node-sqlite", "node-ws")
WRITES = ("messages", "commands")
DEFAULT_ROUNDS = 3
WRITERS = 8


# -- servers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _server(name: str, pin: bool, tmp: Path) -> Iterator[tuple[int, int]]:
    """Start ``name``; yields (port, pid)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOP_")}
    if name == "loop-server":
        env["HOME"] = str(tmp)
        env["DOCKER_HOST"] = f"unix://{tmp / 'no-docker.sock'}"
        command = [
            sys.executable,
            "-m",
            "loop_server",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp / "data"),
        ]
    else:
        command = ["node", str(PEERS / "rest_peer.js")]
        if name == "node-sqlite":
            command += ["--persist", str(tmp / "peer.db")]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if name == "loop-server" else subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
        preexec_fn=(lambda: _pin(0)) if pin else None,
    )
    try:
        port = _wait_ready(name, process)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(name: str, process: subprocess.Popen[str]) -> int:
    stream = process.stderr if name == "loop-server" else process.stdout
    assert stream is not None
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up:
        line = stream.readline()
        if not line:
            break
        match = re.search(r"api server started addr=\S+:(\d+)", line) or re.match(
            r"READY (\d+)", line
        )
        if match:
            if name == "loop-server":
                # Keep its log from filling the pipe.
                subprocess.Popen(["cat"], stdin=stream, stdout=subprocess.DEVNULL)
            return int(match.group(1))
    raise RuntimeError(f"{name} did not start")


# -- the load client -------------------------------------------------------------------------

# The frames a write causes: the user's own message (``/api/messages``; loop-server also stores
# and sends a failed agent run's notice, which is not counted) or the bot's reply (commands).
_USER_MARKER = b'"author_id":"local-user"'
_ANY_MARKER = b'"type":"message.created"'
_CONTENT = b'"content":"'


def _count(sub: Subscriber, data: bytes, marker: bytes) -> int:
    """Frames carrying ``marker`` in ``sub``'s stream, without parsing frames (a marker split
    across two reads is counted once: the previous read's tail is kept)."""
    window = sub.tail + data
    count = window.count(marker)
    sub.tail = window[-(len(marker) - 1) :]
    return count


def _stamps(sub: Subscriber, data: bytes, now: int, latencies: list[int] | None) -> int:
    """Parse ``sub``'s frames: count the user's messages and record write→receive times."""
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
        if buf.find(_USER_MARKER, start, end) >= 0:
            count += 1
            at = buf.find(_CONTENT, start, end)
            if latencies is not None and at >= 0:
                at += len(_CONTENT)
                latencies.append(now - int(buf[at : buf.find(b'"', at, end)]))
        pos = end
    sub.buffer = buf[pos:] if pos < size else b""
    return count


def _request(method: str, path: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


class Writer:
    """One keep-alive connection writing one request at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buffer = b""
        self.busy = False
        self.closed = False

    def send(self, request: bytes) -> None:
        self.sock.setblocking(True)
        self.sock.sendall(request)
        self.sock.setblocking(False)
        self.busy = True

    def read(self) -> list[int]:
        """Statuses of the responses completed by what has arrived."""
        with contextlib.suppress(BlockingIOError):
            data = self.sock.recv(65536)
            if not data:
                if self.busy:
                    raise ConnectionError("a writer's connection was closed")
                # Idle past hypercorn's 5 s keep-alive timeout (once a run's last write is
                # answered, its deliveries may still take that long): a normal close.
                self.closed = True
                return []
            self.buffer += data
        statuses = []
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                break
            statuses.append(int(head.split(b" ", 2)[1]))
            self.buffer = rest[length:]
            self.busy = False
        return statuses


def _create_channel(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(_request("POST", "/api/channels/create", {"name": "bench"}))
        data = b""
        while True:
            head, _, body = data.partition(b"\r\n\r\n")
            match = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if match and len(body) >= int(match.group(1)):
                return str(json.loads(body[: int(match.group(1))])["channel_id"])
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"no channel created: {data!r}")
            data += chunk


def _subscribe(port: int, channel: str) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"GET /api/ws?channels={channel} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
    )
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    head, _, rest = buffer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.decode(errors="replace"))
    sock.setblocking(False)
    return sock, rest


def run_client(options: argparse.Namespace) -> dict[str, Any]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port, n = options.port, options.subscribers
    channel = _create_channel(port)
    poller = select.epoll()
    subs: dict[int, Subscriber] = {}
    for index in range(n):
        sock, _ = _subscribe(port, channel)
        subs[sock.fileno()] = Subscriber(sock, probe=index % 10 == 0)
        poller.register(sock.fileno(), select.EPOLLIN)
    writers: list[Writer] = []
    by_fd: dict[int, Writer] = {}

    def connect_writers() -> None:
        # Fresh connections for each pump: a pump's last answers can precede its last
        # deliveries by seconds (a command is answered before its reply is broadcast), longer
        # than hypercorn's 5 s keep-alive timeout (the Node peer sets 60 s), so the server
        # closes the idle writers meanwhile; that close was taken for a failure ("a writer's
        # connection was closed": the 2026-12-02 `commands` N=1000 failures).
        for writer in writers:
            if not writer.closed:
                poller.unregister(writer.sock.fileno())
            writer.sock.close()
        writers[:] = [Writer(port) for _ in range(WRITERS)]
        by_fd.clear()
        by_fd.update((w.sock.fileno(), w) for w in writers)
        for fd in by_fd:
            poller.register(fd, select.EPOLLIN)

    stamped = options.write == "messages"
    path = "/api/messages" if stamped else "/api/commands"

    def request() -> bytes:
        if stamped:
            body = {"channel_id": channel, "content": str(time.monotonic_ns())}
        else:
            body = {"channel_id": channel, "command": "tasks"}
        return _request("POST", path, body)

    latencies: list[int] = []
    received = 0

    def pump(total_writes: int, record: bool) -> int:
        """Run writes until ``total_writes`` are answered and delivered; returns last receipt."""
        nonlocal received
        connect_writers()
        target = received + total_writes * n
        sent = answered = 0
        last = 0
        for writer in writers:
            if sent < total_writes:
                writer.send(request())
                sent += 1
        give_up = time.monotonic() + options.timeout
        while received < target or answered < total_writes:
            if time.monotonic() > give_up:
                raise TimeoutError(f"{received} of {target} delivered, {answered} answered")
            for fd, _ in poller.poll(0.5, 1024):
                writer = by_fd.get(fd)
                if writer is not None:
                    statuses = writer.read()
                    if writer.closed:
                        poller.unregister(fd)
                        del by_fd[fd]
                    for status in statuses:
                        if status >= 300:
                            raise RuntimeError(f"a write was answered {status}")
                        answered += 1
                        if sent < total_writes:
                            writer.send(request())
                            sent += 1
                    continue
                sub = subs[fd]
                try:
                    data = sub.sock.recv(1 << 18)
                except BlockingIOError:
                    continue
                if not data:
                    raise RuntimeError("a subscriber was closed by the server")
                now = time.monotonic_ns()
                if sub.probe and stamped:
                    got = _stamps(sub, data, now, latencies if record else None)
                else:
                    got = _count(sub, data, _USER_MARKER if stamped else _ANY_MARKER)
                if got:
                    received += got
                    last = now
        return last

    pump(options.warmup, record=False)
    cpu_before = process_cpu_seconds(options.server_pid)
    started = time.monotonic_ns()
    last = pump(options.writes, record=True)
    elapsed = (last - started) / 1e9
    server_cpu = process_cpu_seconds(options.server_pid) - cpu_before
    deliveries = options.writes * n
    return {
        "deliveries_per_s": deliveries / elapsed,
        "writes_per_s": options.writes / elapsed,
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "cpu_us_per_delivery": server_cpu / deliveries * 1e6,
        "server_cpu": server_cpu / elapsed,
    }


# -- orchestration -------------------------------------------------------------------------


@dataclass
class Run:
    server: str
    subscribers: int
    write: str
    result: dict[str, Any] = field(default_factory=dict)


def _run_one(run: Run, options: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="user-path-") as tmp,
        _server(run.server, options.pin, Path(tmp)) as (port, pid),
    ):
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "client",
            f"--port={port}",
            f"--server-pid={pid}",
            f"--subscribers={run.subscribers}",
            f"--write={run.write}",
            f"--writes={options.writes}",
            f"--warmup={options.warmup}",
            f"--timeout={options.timeout}",
        ]
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=options.timeout * 2 + 60,
            preexec_fn=(lambda: _pin(1)) if options.pin else None,
        )
        if completed.returncode != 0:
            run.result = {"error": completed.stderr.strip().splitlines()[-3:]}
            return
        run.result = json.loads(completed.stdout)


def _median(runs: list[Run], key: str) -> float:
    values = [r.result[key] for r in runs if key in r.result]
    return statistics.median(values) if values else float("nan")


def _summarise(runs: list[Run], options: argparse.Namespace) -> str:
    lines = [
        "| write | N | server | deliveries/s | vs node-sqlite | vs node-ws | "
        "write→receive p50 / p99 ms | server CPU µs per delivery | server CPU |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for write in WRITES:
        for n in options.subscribers:
            group = {
                name: [r for r in runs if (r.server, r.subscribers, r.write) == (name, n, write)]
                for name in SERVERS
            }
            persisting = _median(group["node-sqlite"], "deliveries_per_s")
            transport = _median(group["node-ws"], "deliveries_per_s")
            for name in SERVERS:
                chosen = group[name]
                rate = _median(chosen, "deliveries_per_s")
                failed = sum(1 for r in chosen if "error" in r.result)
                latency = (
                    f"{_median(chosen, 'p50_ms'):.1f} / {_median(chosen, 'p99_ms'):.1f}"
                    if write == "messages"
                    else "n/a"
                )
                note = f" ({failed} failed)" if failed else ""
                lines.append(
                    f"| {write} | {n} | {name}{note} | {rate:,.0f} | {rate / persisting:.2f}× | "
                    f"{rate / transport:.2f}× | {latency} | "
                    f"{_median(chosen, 'cpu_us_per_delivery'):.2f} | "
                    f"{_median(chosen, 'server_cpu'):.0%} |"
                )
    return "\n".join(lines) + "\n"


def orchestrate(options: argparse.Namespace) -> None:
    if not (PEERS / "node_modules" / "better-sqlite3").is_dir():
        raise SystemExit("run `make bench-peers` first (npm ci in benchmarks/peers)")
    runs: list[Run] = []
    for write in WRITES:
        for n in options.subscribers:
            for round_number in range(options.rounds):
                shift = round_number % len(SERVERS)
                for name in SERVERS[shift:] + SERVERS[:shift]:
                    run = Run(name, n, write)
                    _run_one(run, options)
                    runs.append(run)
                    print(f"{write} N={n} {name}: {run.result}", flush=True)
    table = _summarise(runs, options)
    print()
    print(table)
    if options.quick:
        return
    body = (
        f"{SECTION}\n\n"
        f"Measured {datetime.date.today().isoformat()} on {_machine()}, better-sqlite3 12; "
        "server pinned to CPU 0, load client to CPU 1. Absolute figures move with the host "
        "(and with anything else running on its two cores); the ratios compare servers "
        "measured alternately in the same run (fresh process per run, order rotated each "
        "round, medians).\n\n"
        f"Command: `.venv/bin/python benchmarks/events_user_path.py` ({options.rounds} rounds; "
        f"{options.writes} measured writes per run after {options.warmup} warm-up writes, "
        f"{WRITERS} concurrent writers, one request at a time each).\n\n"
        "*messages* = `POST /api/messages` (no agent: each queued run fails at once because "
        "no Docker engine answers, which costs loop-server three more events per write that "
        "the peers do not send: `agent.status` running and error, and the stored notice's "
        "`message.created`); *commands* = `POST /api/commands` `tasks` (a bot reply stored "
        "and broadcast). Every write is answered only once stored (loop-server: SQLite WAL, "
        "one writer; node-sqlite: better-sqlite3, WAL, `synchronous=FULL`, one transaction "
        "per write; node-ws stores nothing).\n\n"
        f"{table}"
    )
    _write_docs_section(body)


def _write_docs_section(body: str) -> None:
    import events_fanout

    previous = events_fanout.SECTION
    events_fanout.SECTION = SECTION
    try:
        _write_docs(body)
    finally:
        events_fanout.SECTION = previous


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    client = sub.add_parser("client", help="(internal) run the load client")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--server-pid", type=int, required=True)
    client.add_argument("--subscribers", type=int, required=True)
    client.add_argument("--write", choices=WRITES, required=True)
    client.add_argument("--writes", type=int, required=True)
    client.add_argument("--warmup", type=int, default=50)
    client.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--quick", action="store_true", help="one short round, docs untouched")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    options = parser.parse_args()
    if options.command == "client":
        print(json.dumps(run_client(options)))
        return
    if options.quick:
        options.rounds = 1
        options.writes = min(options.writes, 200)
    orchestrate(options)


if __name__ == "__main__":
    main()
