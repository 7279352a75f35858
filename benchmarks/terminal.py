"""Terminal benchmark: /api/ws/terminal against a direct docker exec socket, in one run.

    .venv/bin/python benchmarks/terminal.py            # 5 rounds, prints the report
    .venv/bin/python benchmarks/terminal.py --quick    # 1 short round

What a user of a browser terminal feels, measured the same way on three paths to one shell in
one container (``loop-test:latest``, network none):

* direct: the exec's hijacked Docker socket, read and written by this client itself — the
  floor, what any terminal on Docker pays;
* loop-server: ``/api/ws/terminal`` served on the socket by loop-server's listener (a fresh
  connection: how browsers connect);
* asgi: the same endpoint reached through hypercorn and the ASGI fallback (the upgrade sent on
  a reused keep-alive connection), to show what serving it through ASGI would cost;
* trio-relay: the floor for any Trio server in between — a bare relay in the same server
  process copying raw bytes between a TCP connection and the exec socket (``receive_some`` /
  ``send_all``, no WebSocket, no JSON): what the extra process hop alone costs.

1. Output throughput: ``cat`` of a file of text lines (50 MB by default, made inside the
   container with ``yes | head -c``) in a running shell; time from sending the command to the
   marker printed after it, bytes received over that time.
2. Keystroke echo: a ``cat`` under ``stty raw -echo`` echoes each byte as soon as it reads it;
   send one byte, wait for it to come back, many times: round-trip p50/p99.

The paths run alternately, in a different order each round; figures are medians over rounds.
loop-server runs in its own process (``serve()`` with a ``SessionManager`` on a
``DockerExec``, exactly the production classes); the client is this process, with blocking
sockets and a minimal WebSocket client.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import platform
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "loop-test:latest"
PATHS = ("direct", "trio-relay", "loop-server", "asgi")
DEFAULT_ROUNDS = 5
TERMINAL = "/api/ws/terminal"


# -- the server side (its own process) --------------------------------------------------------


def serve_terminal() -> None:
    """loop-server's listener with the terminal endpoint; prints its port, runs until SIGTERM."""
    import trio
    from hypercorn.config import Config

    from loop_server.containers import DockerEngine, DockerExec
    from loop_server.serving import EventsEndpoint, TerminalEndpoint, serve
    from loop_server.terminal import SessionManager

    def allow(headers: list[tuple[bytes, bytes]], query: dict[str, str]) -> bool:
        return True

    async def not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = [(b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def serve_relay(launcher: Any, client: trio.SocketStream) -> None:
        """``<container id>\n``, then raw bytes both ways to a new ``/bin/sh`` exec."""
        line = b""
        while not line.endswith(b"\n"):
            line += await client.receive_some(1)
        tty = await launcher.start(line.strip().decode(), ["/bin/sh"])

        async def upstream() -> None:
            while data := await client.receive_some(65536):
                await tty.stream.send_all(data)

        async def downstream() -> None:
            if tty.initial_output:
                await client.send_all(tty.initial_output)
            while data := await tty.stream.receive_some(65536):
                await client.send_all(data)

        try:
            async with trio.open_nursery() as relay_nursery:
                relay_nursery.start_soon(upstream)
                await downstream()
                relay_nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                await tty.kill()
                await trio.aclose_forcefully(tty.stream)
                await trio.aclose_forcefully(client)

    async def main() -> None:
        engine = DockerEngine()
        manager = SessionManager(DockerExec(engine))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        config = Config()
        config.accesslog = None
        config.graceful_timeout = 1
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(manager.run)
            endpoint = TerminalEndpoint(manager, allow)
            await nursery.start(
                lambda task_status: serve(
                    not_found,
                    config,
                    [sock],
                    EventsEndpoint(None, allow),
                    terminal=endpoint,
                    shutdown_trigger=stop.wait,
                    task_status=task_status,
                )
            )
            relay = trio.socket.socket()
            await relay.bind(("127.0.0.1", 0))
            relay.listen()
            listener = trio.SocketListener(relay)
            nursery.start_soon(
                trio.serve_listeners, partial(serve_relay, DockerExec(engine)), [listener]
            )
            print(sock.getsockname()[1], relay.getsockname()[1], flush=True)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    break
            stop.set()
            nursery.cancel_scope.cancel()
        engine.close()

    trio.run(main)


# -- a minimal blocking WebSocket client --------------------------------------------------------


class Reader:
    """Bytes from a blocking socket, with a search for a marker across reads."""

    def __init__(self, sock: socket.socket, initial: bytes = b"") -> None:
        self.sock = sock
        self.pending = bytearray(initial)

    def recv(self) -> bytes:
        if self.pending:
            data, self.pending = bytes(self.pending), bytearray()
            return data
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError
        return data


def client_frame(payload: bytes) -> bytes:
    """A masked text frame."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes((0x81, 0x80 | length))
    else:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, length)
    key = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return header + mask + masked


class WsClient:
    """Just enough RFC 6455 for the benchmark: masked text frames out, frames in."""

    def __init__(self, port: int, *, via_keepalive: bool = False) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        if via_keepalive:
            # The listener sniffs only the first request: the upgrade then reaches hypercorn.
            sock.sendall(b"GET /warm-up HTTP/1.1\r\nHost: localhost\r\n\r\n")
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(4096)
            buffer = buffer.partition(b"\r\n\r\n")[2]
        key = base64.b64encode(os.urandom(16))
        sock.sendall(
            f"GET {TERMINAL} HTTP/1.1\r\nHost: localhost\r\n".encode()
            + b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            + b"Sec-WebSocket-Key: "
            + key
            + b"\r\n\r\n"
        )
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(4096)
        head, _, rest = buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"upgrade refused: {head!r}")
        self.sock = sock
        self.buffer = bytearray(rest)
        self.offset = 0
        self._input_frames: dict[bytes, bytes] = {}

    def send_json(self, message: dict[str, Any]) -> None:
        self.sock.sendall(client_frame(json.dumps(message).encode()))

    def frame(self) -> tuple[int, bytes]:
        while True:
            buffer, offset = self.buffer, self.offset
            available = len(buffer) - offset
            if available >= 2:
                opcode = buffer[offset] & 0x0F
                length = buffer[offset + 1] & 0x7F
                header = 2
                if length == 126 and available >= 4:
                    length = struct.unpack_from("!H", buffer, offset + 2)[0]
                    header = 4
                elif length == 127 and available >= 10:
                    length = struct.unpack_from("!Q", buffer, offset + 2)[0]
                    header = 10
                if length < 126 or header > 2:
                    end = offset + header + length
                    if len(buffer) >= end:
                        payload = bytes(buffer[offset + header : end])
                        self.offset = end
                        if end > 1 << 20:
                            del buffer[:end]
                            self.offset = 0
                        return opcode, payload
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError
            buffer += data

    def status(self) -> dict[str, Any]:
        while True:
            opcode, payload = self.frame()
            if opcode == 0x1:
                return dict(json.loads(payload))

    def output(self) -> bytes:
        """The next output bytes (status messages are not expected mid-benchmark)."""
        opcode, payload = self.frame()
        if opcode != 0x2:
            raise RuntimeError(f"unexpected frame {opcode}: {payload[:200]!r}")
        return payload

    def input(self, data: bytes) -> None:
        # Keystroke frames are built once: the client's own cost is not what is measured.
        frame = self._input_frames.get(data)
        if frame is None:
            message = {"type": "input", "data": base64.b64encode(data).decode()}
            frame = client_frame(json.dumps(message).encode())
            if len(data) == 1:
                self._input_frames[data] = frame
        self.sock.sendall(frame)

    def close(self) -> None:
        self.sock.close()


# -- one terminal on each path, behind one interface -------------------------------------------


class Terminal:
    write: Callable[[bytes], None]
    read: Callable[[], bytes]

    def read_until(self, marker: bytes) -> int:
        """Read until ``marker``; returns the number of bytes read."""
        total = 0
        tail = b""
        while True:
            data = self.read()
            total += len(data)
            window = tail + data
            if marker in window:
                return total
            tail = window[-len(marker) :]

    def close(self) -> None: ...


class DirectTerminal(Terminal):
    def __init__(self, client: Any, container_id: str) -> None:
        from loop_server.containers._exec import adopt_sdk_socket

        created = client.api.exec_create(container_id, ["/bin/sh"], stdin=True, tty=True)
        raw = client.api.exec_start(created["Id"], tty=True, socket=True)
        sock, initial = adopt_sdk_socket(raw)
        sock.setblocking(True)
        self.sock = sock
        self.reader = Reader(sock, initial)
        self.write = sock.sendall
        self.read = self.reader.recv

    def close(self) -> None:
        self.sock.close()


class RelayTerminal(Terminal):
    def __init__(self, port: int, container_id: str) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(container_id.encode() + b"\n")
        self.sock = sock
        self.write = sock.sendall
        self.read = Reader(sock).recv

    def close(self) -> None:
        self.sock.close()


class WsTerminal(Terminal):
    def __init__(self, port: int, container_id: str, *, via_keepalive: bool) -> None:
        self.ws = WsClient(port, via_keepalive=via_keepalive)
        self.ws.send_json({"type": "create", "container_id": container_id})
        answer = self.ws.status()
        if answer.get("type") != "created":
            raise RuntimeError(f"create failed: {answer}")
        self.session_id = answer["session_id"]
        self.write = self.ws.input
        self.read = self.ws.output

    def close(self) -> None:
        self.ws.send_json({"type": "stop"})
        try:
            while self.ws.status().get("type") != "stopped":
                pass
        finally:
            self.ws.close()


# -- measurements ------------------------------------------------------------------------------


def measure_throughput(terminal: Terminal, path: str) -> tuple[float, int]:
    """Seconds and bytes for ``cat`` of the big file, command sent → marker seen."""
    terminal.write(b"echo ready-$((20+1))\n")
    terminal.read_until(b"ready-21")
    started = time.perf_counter()
    terminal.write(f"cat {path}; echo done-$((40+2))\n".encode())
    received = terminal.read_until(b"done-42")
    return time.perf_counter() - started, received


def measure_echo(terminal: Terminal, samples: int) -> list[float]:
    """Round-trip seconds of single keystrokes echoed by a raw-mode ``cat``."""
    terminal.write(b"stty raw -echo; echo raw-$((30+3)); cat\n")
    terminal.read_until(b"raw-33")
    times = []
    for n in range(samples):
        key = bytes([0x61 + n % 26])
        started = time.perf_counter()
        terminal.write(key)
        got = b""
        while key not in got:
            got += terminal.read()
        times.append(time.perf_counter() - started)
    return times


@dataclass
class Round:
    throughput: dict[str, float] = field(default_factory=dict)  # MB/s
    received: dict[str, int] = field(default_factory=dict)
    echo_p50: dict[str, float] = field(default_factory=dict)  # ms
    echo_p99: dict[str, float] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1


@contextmanager
def server_process(pin: bool) -> Iterator[tuple[int, int]]:
    """The server's terminal port and the relay's port. Its stderr goes to
    ``$BENCH_SERVER_LOG`` when set."""
    with open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "w") as log:
        process = subprocess.Popen(
            [sys.executable, __file__, "serve"], stdout=subprocess.PIPE, stderr=log, cwd=ROOT
        )
        if pin:
            os.sched_setaffinity(process.pid, {0})
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("the server did not start")
            port, relay_port = (int(word) for word in line.split())
            yield port, relay_port
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def open_terminal(kind: str, client: Any, ports: tuple[int, int], container_id: str) -> Terminal:
    if kind == "direct":
        return DirectTerminal(client, container_id)
    if kind == "trio-relay":
        return RelayTerminal(ports[1], container_id)
    return WsTerminal(ports[0], container_id, via_keepalive=kind == "asgi")


def run(options: argparse.Namespace) -> list[Round]:
    import docker

    client = docker.from_env()
    container = client.containers.create(
        IMAGE,
        ["sleep", "infinity"],
        network_mode="none",
        # loop-server's own labels: terminals open only in containers it made.
        labels={"loop-bench": "terminal", "app": "loop-agent", "loop-channel": "bench-terminal"},
    )
    rounds: list[Round] = []
    try:
        container.start()
        size = options.megabytes * 1_000_000
        made = container.exec_run(
            ["sh", "-c", f"yes 'terminal benchmark line 0123456789' | head -c {size} > /tmp/big"]
        )
        if made.exit_code != 0:
            raise RuntimeError(made.output.decode())
        pin = options.pin and can_pin()
        if pin:
            os.sched_setaffinity(0, {1})
        with server_process(pin) as ports:
            for number in range(options.rounds):
                result = Round()
                shift = number % len(PATHS)
                order = PATHS[shift:] + PATHS[:shift]
                for kind in order:
                    terminal = open_terminal(kind, client, ports, container.id)
                    try:
                        seconds, received = measure_throughput(terminal, "/tmp/big")
                    finally:
                        terminal.close()
                    result.throughput[kind] = received / seconds / 1e6
                    result.received[kind] = received
                for kind in reversed(order):
                    terminal = open_terminal(kind, client, ports, container.id)
                    try:
                        times = measure_echo(terminal, options.samples)
                    finally:
                        terminal.close()
                    result.echo_p50[kind] = percentile(times, 0.5) * 1000
                    result.echo_p99[kind] = percentile(times, 0.99) * 1000
                rounds.append(result)
                print(
                    f"round {number + 1}: "
                    + ", ".join(
                        f"{k} {result.throughput[k]:.0f} MB/s echo {result.echo_p50[k]:.3f}/"
                        f"{result.echo_p99[k]:.3f} ms"
                        for k in PATHS
                    ),
                    flush=True,
                )
    finally:
        container.remove(force=True)
        client.close()
    return rounds


def report(rounds: list[Round], options: argparse.Namespace) -> str:
    def median(pick: Callable[[Round], float]) -> float:
        return statistics.median(pick(r) for r in rounds)

    lines = [
        "| path | throughput MB/s | vs direct | bytes received (last round) "
        "| echo p50 ms | p50 vs direct | echo p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    direct_mbs = median(lambda r: r.throughput["direct"])
    direct_p50 = median(lambda r: r.echo_p50["direct"])
    for kind in PATHS:
        mbs = median(lambda r, k=kind: r.throughput[k])  # type: ignore[misc]
        p50 = median(lambda r, k=kind: r.echo_p50[k])  # type: ignore[misc]
        p99 = median(lambda r, k=kind: r.echo_p99[k])  # type: ignore[misc]
        lines.append(
            f"| {kind} | {mbs:.0f} | {mbs / direct_mbs:.2f}× | {rounds[-1].received[kind]:,} "
            f"| {p50:.3f} | {p50 / direct_p50:.2f}× | {p99:.3f} |"
        )
    ratios = [r.throughput["loop-server"] / r.throughput["direct"] for r in rounds]
    echo_ratios = [r.echo_p50["loop-server"] / r.echo_p50["direct"] for r in rounds]
    machine = (
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()} {platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    return (
        f"Measured {datetime.date.today().isoformat()} on {machine}"
        + (
            "; loop-server pinned to CPU 0, the client to CPU 1"
            if options.pin and can_pin()
            else ""
        )
        + ".\n\n"
        f"Command: `.venv/bin/python benchmarks/terminal.py"
        f"{' --quick' if options.quick else ''}` ({options.rounds} rounds, paths alternating, "
        f"medians; `cat` of a {options.megabytes} MB text file; {options.samples} keystrokes "
        "per echo run).\n\n" + "\n".join(lines) + "\n\n"
        f"Per-round loop-server/direct throughput ratios: "
        f"{', '.join(f'{x:.2f}' for x in ratios)}; echo p50 ratios: "
        f"{', '.join(f'{x:.2f}' for x in echo_ratios)}.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["serve"], help="(internal)")
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    options = parser.parse_args()
    if options.command == "serve":
        serve_terminal()
        return
    if options.quick:
        options.rounds, options.megabytes, options.samples = 1, 20, 300
    rounds = run(options)
    print()
    print(report(rounds, options))


if __name__ == "__main__":
    main()
