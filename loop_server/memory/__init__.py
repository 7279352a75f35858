"""Project memory: index a project's markdown notes and search them (SPEC §10, §3.14–3.15).

Lexical by default (SQLite FTS5, BM25 with Porter stemming; no service, no model download);
Ollama embeddings when configured, fused with the lexical ranking. See docs/memory.md.

Build with ``await open_memory_indexer(db, MemoryConfig.from_extra(config.extra))``; the result
satisfies ``protocols.MemoryIndexer``. ``reindex_forever`` is the periodic re-index task.
"""

from loop_server.memory._cli import index_command
from loop_server.memory._config import EmbeddingsConfig, MemoryConfig, MemoryConfigError
from loop_server.memory._embedder import Embedder, EmbeddingError, GuardedEmbedder
from loop_server.memory._indexer import IndexStats, MemoryIndex
from loop_server.memory._ollama import OllamaEmbedder
from loop_server.memory._paths import (
    GLOBAL_SCOPE,
    MemoryPlan,
    MemoryRoot,
    auto_memory_dir,
    check_project_dir,
    memory_plan,
)
from loop_server.memory._progress import ProgressBar
from loop_server.memory._reindex import channel_work_dirs, reindex_forever, reindex_once
from loop_server.memory._service import DEFAULT_TOP_K, MultiPathIndexer, open_memory_indexer

__all__ = [
    "DEFAULT_TOP_K",
    "GLOBAL_SCOPE",
    "Embedder",
    "EmbeddingError",
    "EmbeddingsConfig",
    "GuardedEmbedder",
    "IndexStats",
    "MemoryConfig",
    "MemoryConfigError",
    "MemoryIndex",
    "MemoryPlan",
    "MemoryRoot",
    "MultiPathIndexer",
    "OllamaEmbedder",
    "ProgressBar",
    "auto_memory_dir",
    "channel_work_dirs",
    "check_project_dir",
    "index_command",
    "memory_plan",
    "open_memory_indexer",
    "reindex_forever",
    "reindex_once",
]
