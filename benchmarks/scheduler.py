"""Scheduler costs (issue 6): many tasks due at once, and the poll when nothing is due.

1. N enabled tasks (default 10,000) become due at once; a no-op executor. Measured: time from
   the start of the poll until every task's job has started, and until every run is recorded
   and rescheduled.
2. The per-poll cost when no task is due, with 100 and with 10,000 tasks stored (none due): the
   due query is an index range scan, so the cost must not grow with tasks that are not due.

Usage: .venv/bin/python benchmarks/scheduler.py [--tasks N] [--polls K]
Everything lives in a temporary directory, removed at the end.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

from loop_server.domain import Task
from loop_server.scheduler import Scheduler
from loop_server.store import Store
from loop_server.timefmt import to_db

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


class NoOpExecutor:
    def __init__(self, expected: int) -> None:
        self.started = 0
        self.expected = expected
        self.all_started = trio.Event()
        self.all_started_at = 0.0

    async def execute(self, task: Task) -> str:
        self.started += 1
        if self.started == self.expected:
            self.all_started_at = time.perf_counter()
            self.all_started.set()
        return "ok"


async def fill(store: Store, count: int, next_run: datetime) -> None:
    when, created = to_db(next_run), to_db(T0)

    def insert(conn):  # type: ignore[no-untyped-def]
        conn.executemany(
            "INSERT INTO scheduled_tasks (channel_id, schedule, type, prompt, enabled,"
            " next_run_at, created_at, updated_at) VALUES (?, '1h', 'interval', 'p', 1, ?, ?, ?)",
            [(f"c{i % 50}", when, created, created) for i in range(count)],
        )

    await store.db.write(insert)


async def due_at_once(directory: Path, count: int) -> tuple[float, float]:
    store = await Store.open(directory / f"due-{count}.db")
    await fill(store, count, T0)
    clock = Clock(T0 + timedelta(seconds=1))
    executor = NoOpExecutor(count)
    scheduler = Scheduler(store, executor, clock=clock, poll_interval=1e9, max_concurrent=64)
    async with trio.open_nursery() as nursery:
        started = time.perf_counter()
        await nursery.start(scheduler.run)  # the first poll runs inside start()
        await executor.all_started.wait()
        await scheduler.wait_idle()
        finished = time.perf_counter()
        nursery.cancel_scope.cancel()
    await store.close()
    return executor.all_started_at - started, finished - started


async def idle_poll(directory: Path, count: int, polls: int) -> list[float]:
    store = await Store.open(directory / f"idle-{count}.db")
    await fill(store, count, T0 + timedelta(days=1))  # none due
    scheduler = Scheduler(store, NoOpExecutor(0), clock=Clock(T0), poll_interval=1e9)
    samples: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        for _ in range(polls):
            begin = time.perf_counter()
            assert await scheduler.tick() == 0
            samples.append((time.perf_counter() - begin) * 1e6)
        nursery.cancel_scope.cancel()
    await store.close()
    return samples


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(tasks: int, polls: int) -> None:
    print(f"machine: {platform.platform()}, Python {sys.version.split()[0]}")
    print(f"command: python benchmarks/scheduler.py --tasks {tasks} --polls {polls}")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        all_started, all_done = await due_at_once(directory, tasks)
        print(
            f"{tasks:,} tasks due at once: all started after {all_started:.2f} s, "
            f"all recorded and rescheduled after {all_done:.2f} s"
        )
        small, large = [], []
        for _ in range(3):  # alternate, so drift hits both sizes alike
            small += await idle_poll(directory, 100, polls)
            large += await idle_poll(directory, tasks, polls)
        for label, values in (("100 tasks", small), (f"{tasks:,} tasks", large)):
            print(
                f"idle poll, {label} stored, none due: p50 {statistics.median(values):.0f} µs,"
                f" p99 {pct(values, 0.99):.0f} µs"
            )
        print(f"ratio p50 {statistics.median(large) / statistics.median(small):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--polls", type=int, default=300)
    args = parser.parse_args()
    trio.run(main, args.tasks, args.polls)
