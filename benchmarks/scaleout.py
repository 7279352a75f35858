"""Scale-out on one machine: 1, 2 and 3 instances on one PostgreSQL and one Redis.

    .venv/bin/python benchmarks/scaleout.py            # full run, writes docs/benchmarks.md
    .venv/bin/python benchmarks/scaleout.py --quick    # one short round, prints only

The user's path as in events_user_path.py: 8 writers ``POST /api/messages`` (no agent: Docker is
a socket nobody serves), each answered once stored, then the ``message.created`` frame on every
one of N subscribers of the channel. Writers and subscribers are spread round-robin over the
instances, so with 2 or 3 instances most deliveries cross Redis from another instance. Everything
runs on the same two cores, so more instances cannot mean more throughput here: the point is the
cost of the hop (PostgreSQL instead of SQLite, the Redis stream between write and socket).
For reference the same load runs on one embedded instance (SQLite, in-process events).

The PostgreSQL and Redis servers are private ones started by tests/services/servers.py (the
programs come from ``scripts/services-env.sh``); a fresh database and an emptied Redis per run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from events_fanout import ROOT, Subscriber, _machine, _percentile, _write_docs  # noqa: E402
from events_user_path import (  # noqa: E402
    _USER_MARKER,
    Writer,
    _count,
    _create_channel,
    _request,
    _stamps,
    _subscribe,
)

from tests.services.servers import PostgresServer, RedisServer  # noqa: E402

SECTION = "## Scale-out: 1, 2 and 3 instances"
SETUPS = ("embedded", "1 instance", "2 instances", "3 instances")
WRITERS = 8


@dataclass
class Backing:
    postgres: PostgresServer
    redis: RedisServer


@contextlib.contextmanager
def _instances(setup: str, backing: Backing, tmp: Path) -> Iterator[list[tuple[int, int]]]:
    """Start the setup's instances; yields [(port, pid)]."""
    count = 1 if setup == "embedded" else int(setup.split()[0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOP_")}
    env["HOME"] = str(tmp)
    env["DOCKER_HOST"] = f"unix://{tmp / 'no-docker.sock'}"
    database = ""
    if setup != "embedded":
        database = backing.postgres.create_database()
        backing.redis.command("FLUSHALL")
        env["LOOP_DATABASE_URL"] = backing.postgres.url(database)
        env["LOOP_REDIS_URL"] = backing.redis.url
    processes: list[subprocess.Popen[str]] = []
    try:
        started = []
        for n in range(count):
            data_dir = tmp / f"data-{n}"
            data_dir.mkdir()
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "loop_server",
                    "serve",
                    "--addr",
                    "127.0.0.1:0",
                    "--data-dir",
                    str(data_dir),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env={**env, "LOOP_INSTANCE_ID": f"bench-{n}"},
            )
            processes.append(process)
            started.append((_wait_ready(process), process.pid))
        yield started
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if database:
            backing.postgres.drop_database(database)


def _wait_ready(process: subprocess.Popen[str]) -> int:
    assert process.stderr is not None
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up:
        line = process.stderr.readline()
        if not line:
            break
        match = re.search(r"api server started addr=\S+:(\d+)", line)
        if match:
            # Keep its log from filling the pipe.
            subprocess.Popen(["cat"], stdin=process.stderr, stdout=subprocess.DEVNULL)
            return int(match.group(1))
    raise RuntimeError("an instance did not start")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(
    instances: list[tuple[int, int]], subscribers: int, writes: int, warmup: int, timeout: float
) -> dict[str, Any]:
    ports = [port for port, _ in instances]
    channel = _create_channel(ports[0])
    poller = select.epoll()
    subs: dict[int, Subscriber] = {}
    for index in range(subscribers):
        sock, _ = _subscribe(ports[index % len(ports)], channel)
        subs[sock.fileno()] = Subscriber(sock, probe=index % 10 == 0)
        poller.register(sock.fileno(), select.EPOLLIN)
    latencies: list[int] = []
    received = 0

    def pump(total: int, record: bool) -> int:
        nonlocal received
        writers = [Writer(ports[i % len(ports)]) for i in range(WRITERS)]
        by_fd = {w.sock.fileno(): w for w in writers}
        for fd in by_fd:
            poller.register(fd, select.EPOLLIN)
        target = received + total * subscribers
        sent = answered = last = 0

        def request() -> bytes:
            body = {"channel_id": channel, "content": str(time.monotonic_ns())}
            return _request("POST", "/api/messages", body)

        for writer in writers:
            if sent < total:
                writer.send(request())
                sent += 1
        give_up = time.monotonic() + timeout
        try:
            while received < target or answered < total:
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
                            if sent < total:
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
                    if sub.probe:
                        got = _stamps(sub, data, now, latencies if record else None)
                    else:
                        got = _count(sub, data, _USER_MARKER)
                    if got:
                        received += got
                        last = now
        finally:
            for fd, writer in by_fd.items():
                poller.unregister(fd)
                writer.sock.close()
        return last

    pump(warmup, record=False)
    cpu_before = sum(_cpu_seconds(pid) for _, pid in instances)
    started = time.monotonic_ns()
    last = pump(writes, record=True)
    elapsed = (last - started) / 1e9
    cpu = sum(_cpu_seconds(pid) for _, pid in instances) - cpu_before
    for sub in subs.values():
        sub.sock.close()
    return {
        "deliveries_per_s": writes * subscribers / elapsed,
        "writes_per_s": writes / elapsed,
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "cpu_us_per_delivery": cpu / (writes * subscribers) * 1e6,
    }


@dataclass
class Run:
    setup: str
    subscribers: int
    result: dict[str, Any] = field(default_factory=dict)


def _median(runs: list[Run], key: str) -> float:
    values = [r.result[key] for r in runs if key in r.result]
    return statistics.median(values) if values else float("nan")


def _summarise(runs: list[Run], subscriber_counts: list[int]) -> str:
    lines = [
        "| N | setup | deliveries/s | vs 1 instance | write→receive p50 / p99 ms |"
        " CPU µs per delivery (all instances) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for n in subscriber_counts:
        one = _median(
            [r for r in runs if (r.setup, r.subscribers) == ("1 instance", n)], "deliveries_per_s"
        )
        for setup in SETUPS:
            chosen = [r for r in runs if (r.setup, r.subscribers) == (setup, n)]
            failed = sum(1 for r in chosen if "error" in r.result)
            rate = _median(chosen, "deliveries_per_s")
            note = f" ({failed} failed)" if failed else ""
            lines.append(
                f"| {n} | {setup}{note} | {rate:,.0f} | {rate / one:.2f}× | "
                f"{_median(chosen, 'p50_ms'):.1f} / {_median(chosen, 'p99_ms'):.1f} | "
                f"{_median(chosen, 'cpu_us_per_delivery'):.1f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round, docs untouched")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[200])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=300)
    options = parser.parse_args()
    if options.quick:
        options.rounds, options.writes = 1, min(options.writes, 100)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    backing = Backing(PostgresServer.start(), RedisServer.start())
    runs: list[Run] = []
    try:
        for n in options.subscribers:
            for round_number in range(options.rounds):
                shift = round_number % len(SETUPS)
                for setup in SETUPS[shift:] + SETUPS[:shift]:
                    run = Run(setup, n)
                    with (
                        tempfile.TemporaryDirectory(prefix="scaleout-") as tmp,
                        _instances(setup, backing, Path(tmp)) as instances,
                    ):
                        try:
                            run.result = run_load(
                                instances, n, options.writes, options.warmup, options.timeout
                            )
                        except (RuntimeError, TimeoutError, ConnectionError) as err:
                            run.result = {"error": str(err)}
                    runs.append(run)
                    print(f"N={n} {setup}: {run.result}", flush=True)
    finally:
        backing.redis.stop()
        backing.postgres.stop()
    table = _summarise(runs, options.subscribers)
    print()
    print(table)
    if options.quick:
        return
    body = (
        f"{SECTION}\n\n"
        f"Measured {datetime.date.today().isoformat()} on {_machine()}. Command: "
        f"`.venv/bin/python benchmarks/scaleout.py` ({options.rounds} rounds, "
        f"{options.writes} measured writes per run after {options.warmup} warm-up writes, "
        f"{WRITERS} writers, `POST /api/messages`, writers and subscribers spread round-robin "
        "over the instances; medians). All instances, PostgreSQL 15 and Redis 7 share the "
        "same two cores, so this shows the cost per hop, not added capacity. *embedded* = "
        "one instance on SQLite with in-process events; the others are on PostgreSQL + Redis "
        "(fsync off on the benchmark's PostgreSQL, so the figures show the hop, not the disk).\n\n"
        f"{table}"
    )
    import events_fanout

    events_fanout.SECTION = SECTION
    _write_docs(body)


if __name__ == "__main__":
    main()
