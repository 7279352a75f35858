"""Memory index throughput and search latency at 10^3, 10^4 and 10^5 chunks (SPEC §10).

For each size the script writes a markdown corpus into a temp dir (one chunk per note, ~1 KB
of Zipf-distributed words, 100 notes per directory, mtimes an hour old as in a tree nobody is
editing), indexes it into a fresh SQLite file through ``MultiPathIndexer`` (the same path the
API and the CLI take), then measures:

* first index: files/s and MB/s (read, hash, chunk, insert, FTS5 index, one transaction per
  batch of 256 files);
* re-index of the unchanged tree: the stat fast path (a ``stat`` per file, nothing read), and
  after a ``touch`` of every file (each file read and hashed again, found unchanged);
* search latency of the lexical index (the query alone, through ``Database.read``: worker
  thread hop included), p50/p99 over questions of 2–6 words mixing common and rare words;
* search as the API runs it without the watcher (freshness re-index of the tree first, then the
  query), and with the inotify watcher running as the server runs it (only files changed since
  the last search are re-indexed; nothing changes here, so it is the drain plus the query).

Targets (issue 7): search p99 < 50 ms at 10^5 chunks; re-indexing an unchanged tree of 10^4
files < 2 s.

Usage:  .venv/bin/python benchmarks/memory.py [--quick] [--queries N]
        (--quick: 10^3 and 10^4 chunks only, fewer queries)
Nothing is written outside a temporary directory, which is removed at the end.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from loop_server.memory import MemoryConfig, MultiPathIndexer, open_memory_indexer
from loop_server.memory._search import search
from loop_server.store import Database

NOTES_PER_DIR = 100
VOCABULARY = 20_000
SYLLABLES = [c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"] + ["th", "st", "an", "er"]
HOUR_AGO = time.time() - 3600


@dataclass
class Result:
    chunks: int
    files: int
    corpus_bytes: int
    generate_s: float
    index_s: float
    reindex_stat_s: list[float]
    reindex_hash_s: float
    search_ms: list[float]
    api_search_ms: list[float]
    watched_search_ms: list[float]
    db_bytes: int


def make_words(rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))))
    return sorted(words, key=lambda w: (len(w), w))  # short words are the common ones


def generate(root: Path, files: int, words: list[str], rng: random.Random) -> int:
    # Zipf: the word of rank n is 1/n as common as the first (cumulative weights, computed once).
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(words))))
    total = 0
    for n in range(files):
        directory = root / f"d{n // NOTES_PER_DIR:04}"
        if n % NOTES_PER_DIR == 0:
            directory.mkdir(parents=True)
        lines = [f"# {' '.join(rng.choices(words[:2000], k=3))}", ""]
        size = rng.randint(500, 1500)
        while sum(len(line) + 1 for line in lines) < size:
            lines.append(" ".join(rng.choices(words, cum_weights=cumulative, k=rng.randint(8, 16))))
        text = "\n".join(lines) + "\n"
        path = directory / f"note-{n:06}.md"
        path.write_text(text, encoding="utf-8")
        os.utime(path, (HOUR_AGO, HOUR_AGO))
        total += len(text.encode("utf-8"))
    return total


def touch_all(root: Path) -> None:
    for path in root.rglob("*.md"):
        os.utime(path, (HOUR_AGO - 60, HOUR_AGO - 60))


def disk_bytes(directory: Path, chunks: int) -> int:
    return sum(p.stat().st_size for p in directory.glob(f"memory-{chunks}.db*"))


def questions(words: list[str], count: int, rng: random.Random) -> list[str]:
    out = []
    for _ in range(count):
        common = rng.choices(words[:300], k=rng.randint(1, 3))
        rare = rng.choices(words[300:], k=rng.randint(1, 3))
        out.append("how do I " + " ".join(common + rare) + "?")
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(
    tmp: Path, chunks: int, words: list[str], queries: int, api_queries: int
) -> Result:
    rng = random.Random(chunks)
    project = tmp / f"project-{chunks}"
    notes = project / "notes"
    started = time.perf_counter()
    corpus_bytes = generate(notes, chunks, words, rng)
    generate_s = time.perf_counter() - started
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    async with await Database.open(tmp / f"memory-{chunks}.db") as db:
        indexer: MultiPathIndexer = await open_memory_indexer(
            db, MemoryConfig(paths=("notes",)), home=home
        )
        started = time.perf_counter()
        stats = await indexer.index_with_stats(str(project))
        index_s = time.perf_counter() - started
        if stats.indexed != chunks:
            raise AssertionError(f"indexed {stats.indexed} files, expected {chunks}")
        reindex_stat_s = []
        for _ in range(5):
            started = time.perf_counter()
            stats = await indexer.index_with_stats(str(project))
            reindex_stat_s.append(time.perf_counter() - started)
            if stats.indexed:
                raise AssertionError("unchanged tree re-indexed files")
        touch_all(notes)  # new stat, same content: every file is read and hashed again
        started = time.perf_counter()
        stats = await indexer.index_with_stats(str(project))
        reindex_hash_s = time.perf_counter() - started
        if stats.indexed or stats.unchanged != chunks:
            raise AssertionError("touched tree re-indexed files")

        asked = questions(words, queries, rng)
        for question in asked[:50]:  # warm-up: page cache, statement cache, threads
            await search(db, None, str(project), question, 5)
        search_ms = []
        for question in asked:
            started = time.perf_counter()
            results = await search(db, None, str(project), question, 5)
            search_ms.append((time.perf_counter() - started) * 1000)
            if not results:
                raise AssertionError(f"no results for {question!r}")
        api_search_ms = []
        for question in asked[:api_queries]:
            started = time.perf_counter()
            await indexer.search(str(project), question, 5)
            api_search_ms.append((time.perf_counter() - started) * 1000)
        # As the server runs it: the inotify watcher started (runtime starts ``memory.watch``),
        # so a search re-indexes only the files changed since the last one. Its first search
        # walks the tree and adds the watches (not timed: once per project and plan).
        watched_search_ms = []
        async with trio.open_nursery() as nursery:
            await nursery.start(indexer.watch)
            await indexer.search(str(project), asked[0], 5)
            for question in asked:
                started = time.perf_counter()
                await indexer.search(str(project), question, 5)
                watched_search_ms.append((time.perf_counter() - started) * 1000)
            nursery.cancel_scope.cancel()
    db_bytes = disk_bytes(tmp, chunks)
    return Result(
        chunks,
        chunks,
        corpus_bytes,
        generate_s,
        index_s,
        reindex_stat_s,
        reindex_hash_s,
        search_ms,
        api_search_ms,
        watched_search_ms,
        db_bytes,
    )


def report(result: Result) -> None:
    mb = result.corpus_bytes / 1e6
    print(
        f"\n{result.chunks:,} chunks ({result.files:,} files, {mb:.1f} MB of markdown, "
        f"database {result.db_bytes / 1e6:.1f} MB; corpus written in {result.generate_s:.1f} s)"
    )
    print(
        f"  first index           {result.index_s:8.2f} s   {result.files / result.index_s:8,.0f}"
        f" files/s   {mb / result.index_s:6.2f} MB/s"
    )
    stat_median = statistics.median(result.reindex_stat_s)
    print(
        f"  re-index, unchanged   {stat_median:8.3f} s   (stat only; median of 5,"
        f" min {min(result.reindex_stat_s):.3f} s)"
    )
    print(f"  re-index, touched     {result.reindex_hash_s:8.3f} s   (every file read and hashed)")
    print(
        f"  search (index only)   p50 {statistics.median(result.search_ms):7.2f} ms"
        f"   p99 {percentile(result.search_ms, 0.99):7.2f} ms   ({len(result.search_ms)} queries)"
    )
    print(
        f"  search (API: re-index + query)  p50 {statistics.median(result.api_search_ms):8.1f} ms"
        f"   p99 {percentile(result.api_search_ms, 0.99):8.1f} ms"
        f"   ({len(result.api_search_ms)} queries)"
    )
    print(
        f"  search (API, watcher running)   p50 {statistics.median(result.watched_search_ms):8.2f}"
        f" ms   p99 {percentile(result.watched_search_ms, 0.99):8.2f} ms"
        f"   ({len(result.watched_search_ms)} queries)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 chunks only")
    parser.add_argument("--queries", type=int, help="timed searches per size (default 1000)")
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    queries = args.queries or (300 if args.quick else 1000)
    print("memory index: lexical (FTS5 BM25, porter), one chunk per note, top_k 5")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    print(f"command: python {' '.join(sys.argv)}")
    words = make_words(random.Random(1))
    with tempfile.TemporaryDirectory(prefix="loop-bench-memory-") as tmp:
        for size in sizes:
            api_queries = max(20, min(200, 2_000_000 // (size * 10)))
            report(await measure(Path(tmp), size, words, queries, api_queries))


if __name__ == "__main__":
    trio.run(main)
