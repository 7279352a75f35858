"""The API's ``MemoryIndexer``: a project dir's memory paths, indexed and searched (SPEC §10)."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import trio

from loop_server.memory._config import MemoryConfig
from loop_server.memory._embedder import GuardedEmbedder
from loop_server.memory._indexer import IndexStats, MemoryIndex, Progress
from loop_server.memory._ollama import OllamaEmbedder
from loop_server.memory._paths import MemoryPlan, check_project_dir, memory_plan
from loop_server.memory._schema import create_tables
from loop_server.memory._search import search
from loop_server.memory._watch import MemoryWatcher
from loop_server.protocols import MemorySearchResult
from loop_server.store import Database

log = logging.getLogger(__name__)

DEFAULT_TOP_K = 5


class MultiPathIndexer:
    """Satisfies ``MemoryIndexer``. ``dir_path`` must be absolute (``ValueError`` otherwise)."""

    def __init__(
        self,
        index: MemoryIndex,
        config: MemoryConfig,
        *,
        home: Path,
        claude_dir: Path | None = None,
    ) -> None:
        self._index = index
        self._config = config
        self._home = home
        self._claude_dir = claude_dir
        # Inactive until ``watch`` runs: searches then walk the tree first, as upstream.
        self.watcher = MemoryWatcher()

    async def watch(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow file changes so searches re-index only what changed (``_watch``)."""
        await self.watcher.run(task_status=task_status)

    @property
    def config(self) -> MemoryConfig:
        return self._config

    @property
    def embedder(self) -> GuardedEmbedder | None:
        return self._index.embedder

    async def plan(self, dir_path: str) -> MemoryPlan:
        project_dir = check_project_dir(dir_path)
        # Reads <dir>/.loop/config.json and checks the auto-memory dir: file I/O, so a thread.
        return await trio.to_thread.run_sync(
            partial(
                memory_plan,
                project_dir,
                self._config.paths,
                self._home,
                claude_dir=self._claude_dir,
                project_allowlist=self._config.project_allowlist,
            )
        )

    async def index(self, dir_path: str) -> int:
        return (await self.index_with_stats(dir_path)).indexed

    async def index_with_stats(
        self, dir_path: str, *, progress: Progress | None = None, backfill: bool = True
    ) -> IndexStats:
        plan = await self.plan(dir_path)
        stats = await self._index.index_plan(plan, progress=progress, backfill=backfill)
        _log_pass(plan, stats)
        return stats

    async def _full_pass(self, plan: MemoryPlan) -> IndexStats:
        stats = await self._index.index_plan(plan, backfill=False)
        _log_pass(plan, stats)
        return stats

    async def search(
        self, dir_path: str, query: str, top_k: int
    ) -> list[MemorySearchResult] | None:
        project_dir = check_project_dir(dir_path)
        # Fresh results, as upstream: bring the index in line first — with the watcher, only
        # the files changed since the last search. Rows that only lack a vector are left to
        # explicit and periodic indexing, so a search never waits for a backlog of embeddings.
        plan = await self.plan(project_dir)
        await self.watcher.freshen(plan, self._full_pass, self._index.index_paths)
        return await search(
            self._index.db,
            self._index.embedder,
            project_dir,
            query,
            top_k if top_k > 0 else DEFAULT_TOP_K,
        )


async def open_memory_indexer(
    db: Database,
    config: MemoryConfig,
    *,
    home: Path | None = None,
    claude_dir: Path | None = None,
) -> MultiPathIndexer:
    """Create the memory tables if needed and build the indexer ``config`` describes.
    ``claude_dir``: the Claude state dir mounted into the server's containers, whose
    per-project auto-memory is indexed too."""
    await db.write(create_tables)
    embedder = None
    if config.embeddings is not None:
        settings = config.embeddings
        provider = OllamaEmbedder(
            url=settings.ollama_url,
            model=settings.model,
            dimensions=settings.dimensions,
            timeout=settings.timeout_sec,
        )
        embedder = GuardedEmbedder(provider, retry_after=settings.retry_after_sec)
        log.info("memory: embeddings from %s, fused with the lexical index", provider.name)
    index = MemoryIndex(
        db,
        max_chunk_chars=config.max_chunk_chars,
        max_file_bytes=config.max_file_bytes,
        embedder=embedder,
    )
    return MultiPathIndexer(
        index, config, home=home if home is not None else Path.home(), claude_dir=claude_dir
    )


def _log_pass(plan: MemoryPlan, stats: IndexStats) -> None:
    """One line per pass that changed something (quiet passes say nothing)."""
    if stats.indexed or stats.removed:
        log.info(
            "memory: indexed %s: %d files re-indexed, %d unchanged, %d removed",
            plan.project_dir,
            stats.indexed,
            stats.unchanged,
            stats.removed,
        )
