"""Message-history paging latency with 10^3 vs 10^6 stored messages (SPEC §3.5).

Claim under test: a history page costs the same however many messages are stored, because
``MessageRepository.page`` is a range scan of the (channel_id, id) index that stops after
``limit`` rows. The script builds two databases in a temp dir, then times ``page()`` through
``Database.read`` (worker-thread hop included, as the API sees it) and, separately, the same SQL
run back-to-back inside one read (no thread hop), for the newest page and for the deepest full
page. Limit 51 = the API's default 50 plus its one-row probe. The two sizes are measured in
alternating rounds so drift on a noisy machine hits both alike.

Usage:  .venv/bin/python benchmarks/history.py [--quick] [--iterations N]
        (--quick: 10^3 vs 10^5 messages and fewer iterations)
Nothing is written outside a temporary directory, which is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

from loop_server.domain import ChannelUpsert
from loop_server.store import Store
from loop_server.store.messages import _newest  # the exact query page() runs
from loop_server.timefmt import to_db

CHANNELS = 10
LIMIT = 51
ROUNDS = 10
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Case:
    store: Store
    size: int
    build_seconds: float
    db_bytes: int
    channels: list[str]
    deep_cursor: dict[str, int]
    samples: dict[str, list[float]] = field(default_factory=dict)  # µs per call


async def build(directory: Path, size: int) -> Case:
    store = await Store.open(directory / f"history-{size}.db")
    channels = [f"bench-{i}" for i in range(CHANNELS)]
    started = time.perf_counter()
    for channel_id in channels:
        await store.channels.upsert(ChannelUpsert(channel_id=channel_id, name=channel_id), T0)

    def bulk_insert(conn: sqlite3.Connection) -> None:
        chat = dict(conn.execute("SELECT channel_id, id FROM channels").fetchall())
        rows = (
            (
                chat[channels[n % CHANNELS]],
                channels[n % CHANNELS],
                f"bench-{n}",
                f"user-{n % 7}",
                "alice",
                f"message {n}: the quick brown fox jumps over the lazy dog, again and again",
                n % 2,
                1,
                to_db(T0 + timedelta(seconds=n)),
            )
            for n in range(size)
        )
        conn.executemany(
            "INSERT INTO messages (chat_id, channel_id, msg_id, author_id, author_name, content,"
            " is_bot, is_processed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    # One transaction: one fsync instead of a million.
    await store.db.write(bulk_insert)
    build_seconds = time.perf_counter() - started

    def deepest_full_page(conn: sqlite3.Connection) -> dict[str, int]:
        # The cursor with exactly LIMIT older rows: the last full page, as deep as paging goes.
        return {
            channel_id: conn.execute(
                "SELECT id FROM messages WHERE channel_id = ? ORDER BY id LIMIT 1 OFFSET ?",
                (channel_id, LIMIT),
            ).fetchone()[0]
            for channel_id in channels
        }

    deep = await store.db.read(deepest_full_page)
    return Case(store, size, build_seconds, _disk_bytes(directory, size), channels, deep)


def _disk_bytes(directory: Path, size: int) -> int:
    return sum(p.stat().st_size for p in directory.glob(f"history-{size}.db*"))


async def time_page(case: Case, name: str, deep: bool, iterations: int) -> None:
    """page() as callers see it: one Database.read (thread hop + read transaction) per call."""
    samples = case.samples.setdefault(name, [])
    for i in range(iterations):
        channel_id = case.channels[i % CHANNELS]
        cursor = case.deep_cursor[channel_id] if deep else 0
        started = time.perf_counter_ns()
        page = await case.store.messages.page(channel_id, cursor, LIMIT)
        samples.append((time.perf_counter_ns() - started) / 1000)
        if len(page) != LIMIT:
            raise AssertionError(f"{name}: got {len(page)} rows, expected {LIMIT}")


async def time_sql(case: Case, name: str, deep: bool, iterations: int) -> None:
    """The same query and row conversion, back-to-back in one read: the SQLite cost alone."""

    def run(conn: sqlite3.Connection) -> list[float]:
        out = []
        for i in range(iterations):
            channel_id = case.channels[i % CHANNELS]
            cursor = case.deep_cursor[channel_id] if deep else 0
            started = time.perf_counter_ns()
            _newest(conn, channel_id, cursor, LIMIT)
            out.append((time.perf_counter_ns() - started) / 1000)
        return out

    case.samples.setdefault(name, []).extend(await case.store.db.read(run))


async def time_raw(case: Case, name: str, deep: bool, iterations: int) -> None:
    """The same SQL fetching plain tuples: what is left once row -> Message conversion
    (mostly timestamp parsing) is taken out."""

    def run(conn: sqlite3.Connection) -> list[float]:
        out = []
        for i in range(iterations):
            channel_id = case.channels[i % CHANNELS]
            cursor = case.deep_cursor[channel_id] if deep else 0
            started = time.perf_counter_ns()
            conn.execute(
                "SELECT id, channel_id, msg_id, author_id, author_name, content, is_bot,"
                " is_processed, created_at FROM messages WHERE channel_id = ? AND id < ?"
                " ORDER BY id DESC LIMIT ?",
                (channel_id, cursor if deep else 2**62, LIMIT),
            ).fetchall()
            out.append((time.perf_counter_ns() - started) / 1000)
        return out

    case.samples.setdefault(name, []).extend(await case.store.db.read(run))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10^3 vs 10^5 messages, fewer runs")
    parser.add_argument("--iterations", type=int, help="timed calls per case (default 5000)")
    args = parser.parse_args()
    big = 100_000 if args.quick else 1_000_000
    iterations = args.iterations or (1000 if args.quick else 5000)
    per_round = max(1, iterations // ROUNDS)

    print(f"history paging: limit {LIMIT}, {CHANNELS} channels, {per_round * ROUNDS} calls/case")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    print(f"command: python {' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory(prefix="loop-bench-history-") as tmp:
        small = await build(Path(tmp), 1_000)
        large = await build(Path(tmp), big)
        try:
            for case in (small, large):
                print(
                    f"built {case.size:>9,} messages in {case.build_seconds:6.2f} s"
                    f" ({case.db_bytes / 2**20:,.1f} MiB on disk)"
                )
            cases = [
                ("page() newest, via Database.read", time_page, False),
                ("page() deep cursor, via Database.read", time_page, True),
                ("SQL only newest (no thread hop)", time_sql, False),
                ("SQL only deep cursor (no thread hop)", time_sql, True),
                ("raw rows newest (no Message objects)", time_raw, False),
                ("raw rows deep cursor (no Message objects)", time_raw, True),
            ]
            for case in (small, large):  # warm-up: page cache, statement cache, threads
                for name, fn, deep in cases:
                    await fn(case, "warm-up " + name, deep, 200)
            for _ in range(ROUNDS):
                for case in (small, large):
                    for name, fn, deep in cases:
                        await fn(case, name, deep, per_round)
        finally:
            await small.store.close()
            await large.store.close()

    exp = len(str(big)) - 1
    print()
    print(
        f"{'case (µs per call)':<42} {'10^3 p50':>9} {'p99':>7}"
        f" {f'10^{exp} p50':>9} {'p99':>7} {'ratio p50':>10} {'ratio p99':>10}"
    )
    for name, _, _ in cases:
        a, b = small.samples[name], large.samples[name]
        a50, a99, b50, b99 = (
            statistics.median(a),
            percentile(a, 0.99),
            statistics.median(b),
            percentile(b, 0.99),
        )
        print(
            f"{name:<42} {a50:9.1f} {a99:7.1f} {b50:9.1f} {b99:7.1f}"
            f" {b50 / a50:10.2f} {b99 / a99:10.2f}"
        )


if __name__ == "__main__":
    trio.run(main)
