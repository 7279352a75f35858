"""Periodic re-indexing of every channel's memory (SPEC §10), a task for the root nursery."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

import trio

from loop_server.protocols import ChannelLister, MemoryIndexer

log = logging.getLogger(__name__)

DirLister = Callable[[], Awaitable[Iterable[str]]]


async def channel_work_dirs(channels: ChannelLister, loop_dir: str) -> list[str]:
    """Each top-level channel's work dir, once: its ``dir_path``, or ``<loop dir>/<id>/work``.

    Threads are left out: they work in their parent's directory.
    """
    dirs: dict[str, None] = {}
    for channel in await channels.list_channels():
        if channel.parent_id:
            continue
        work_dir = channel.work_dir(loop_dir)
        if work_dir:
            dirs[work_dir] = None
    return list(dirs)


async def reindex_once(indexer: MemoryIndexer, list_dirs: DirLister) -> int:
    """One pass over every dir; failures are logged and skipped. Returns files re-indexed."""
    try:
        dirs = list(await list_dirs())
    except Exception:
        log.exception("memory: re-index: listing channel dirs failed")
        return 0
    total = 0
    for dir_path in dirs:
        try:
            total += await indexer.index(dir_path)
        except Exception as err:
            log.warning("memory: re-index of %s failed: %s", dir_path, err)
    return total


async def reindex_forever(
    indexer: MemoryIndexer,
    list_dirs: DirLister,
    interval: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Re-index at start-up and then every ``interval`` seconds, until cancelled.

    Reports started at once, so the server does not wait for the first pass. The interval is
    measured from the end of one pass to the start of the next: a pass that takes longer than
    the interval never overlaps the next one.
    """
    if interval <= 0:
        raise ValueError("interval must be positive")
    task_status.started()
    while True:
        count = await reindex_once(indexer, list_dirs)
        if count:
            log.info("memory: periodic re-index wrote %d files", count)
        await trio.sleep(interval)
