"""``loop-server memory index DIR``: index a project's memory into the data dir's database.

Prints the number of files (re)indexed on stdout (for scripts) and a summary on stderr; while
it runs, a progress bar on stderr when stderr is a terminal. Safe to run beside a serving
server: both use the same database file in WAL mode, and writes take turns.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TextIO

import trio

from loop_server.config import Config, ConfigError, load_config
from loop_server.memory._config import MemoryConfig, MemoryConfigError
from loop_server.memory._indexer import IndexStats
from loop_server.memory._progress import ProgressBar
from loop_server.memory._service import open_memory_indexer
from loop_server.store import Database, StoreError

EXIT_USAGE = 2
EXIT_FAILURE = 1


def index_command(
    dir_arg: str,
    *,
    data_dir: str | None,
    config_file: str | None,
    env: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    try:
        # The address is irrelevant here (nothing listens); pinning it keeps a LOOP_ADDR meant
        # for the server from failing this command with a bind-safety error.
        config = load_config(
            {"data_dir": data_dir, "addr": "127.0.0.1:0"}, env, config_flag=config_file
        )
        memory_config = MemoryConfig.from_extra(config.extra)
    except (ConfigError, MemoryConfigError) as err:
        print(f"loop-server: {err}", file=stderr)
        return EXIT_USAGE
    if "\x00" in dir_arg:
        print("loop-server: DIR must not contain NUL bytes", file=stderr)
        return EXIT_USAGE
    project_dir = os.path.abspath(os.path.expanduser(dir_arg))
    if not os.path.isdir(project_dir):
        print(f"loop-server: {dir_arg}: not a directory", file=stderr)
        return EXIT_USAGE
    bar = ProgressBar(stderr)
    started = time.monotonic()
    try:
        stats = trio.run(_index, config, memory_config, project_dir, bar)
    except StoreError as err:
        bar.finish()
        print(f"loop-server: {err}", file=stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        bar.finish()
        print("loop-server: interrupted", file=stderr)
        return 130
    bar.finish()
    print(summary(project_dir, stats, time.monotonic() - started), file=stderr)
    print(stats.indexed, file=stdout)
    return 0


async def _index(
    config: Config, memory_config: MemoryConfig, project_dir: str, bar: ProgressBar
) -> IndexStats:
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"data dir {config.data_dir} is not usable: {err.strerror}") from err
    async with await Database.open(config.db_path, readers=1) as db:
        indexer = await open_memory_indexer(db, memory_config, claude_dir=config.claude_dir)
        return await indexer.index_with_stats(project_dir, progress=bar)


def summary(project_dir: str, stats: IndexStats, seconds: float) -> str:
    text = (
        f"memory: {project_dir}: {stats.scanned} files found, {stats.indexed} indexed, "
        f"{stats.unchanged} unchanged, {stats.skipped} skipped, {stats.removed} removed"
    )
    if stats.embedded:
        text += f", {stats.embedded} chunks embedded"
    return text + f" in {seconds:.2f} s"
