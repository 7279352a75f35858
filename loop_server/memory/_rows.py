"""SQL over the memory tables. Plain functions of a connection, run through ``Database``.

Scope rule (SPEC §7.2): a project's search sees rows whose ``dir_path`` is the project dir or
``''`` (global scope). Every function here takes the scope it works on explicitly.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loop_server.memory._vectors import cosine, norm, unpack_float32

# Rows are deleted and inserted in groups of this many bound parameters at most.
_SQL_BATCH = 500


@dataclass(frozen=True, slots=True)
class StoredFile:
    content_hash: str
    file_stat: str  # "" when the stat cannot be trusted (the file was changing as it was read)


@dataclass(frozen=True, slots=True)
class NewChunk:
    chunk_index: int
    content: str  # "" for the header row of a large file
    embedding: bytes | None
    dimensions: int


@dataclass(frozen=True, slots=True)
class NewFile:
    file_path: str
    content_hash: str
    file_stat: str
    title: str
    chunks: tuple[NewChunk, ...]  # row 0 first: the whole file, or a hash-only header


@dataclass(frozen=True, slots=True)
class Hit:
    file_path: str
    chunk_index: int
    content: str
    score: float  # higher is better; the meaning depends on the ranking (docs/memory.md)


def _range_of(root: str) -> tuple[str, str]:
    # Paths below ``root`` sort between "root/" and "root0" ("0" follows "/" in ASCII), so the
    # scope index answers "every file under root" as one range scan.
    base = root if root.endswith("/") else root + "/"
    return base, base[:-1] + "0"


def load_files(conn: sqlite3.Connection, scope: str, root: str | None) -> dict[str, StoredFile]:
    """Header rows of ``scope`` (only those at or under ``root`` when given)."""
    sql = (
        "SELECT file_path, content_hash, file_stat FROM memory_files"
        " WHERE dir_path = ? AND chunk_index = 0"
    )
    args: tuple[str, ...] = (scope,)
    if root is not None:
        low, high = _range_of(root)
        sql += " AND (file_path = ? OR (file_path >= ? AND file_path < ?))"
        args += (root, low, high)
    return {path: StoredFile(digest, stat) for path, digest, stat in conn.execute(sql, args)}


def file_paths(conn: sqlite3.Connection, scope: str) -> list[str]:
    """The file paths of every header row of ``scope``."""
    return [
        path
        for (path,) in conn.execute(
            "SELECT file_path FROM memory_files WHERE dir_path = ? AND chunk_index = 0", (scope,)
        )
    ]


def replace_files(
    conn: sqlite3.Connection, scope: str, files: Sequence[NewFile], updated_at: str
) -> None:
    delete_files(conn, scope, [file.file_path for file in files])
    conn.executemany(
        "INSERT INTO memory_files (file_path, chunk_index, content, content_hash, embedding,"
        " dimensions, dir_path, updated_at, title, file_stat)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (
                file.file_path,
                chunk.chunk_index,
                chunk.content,
                file.content_hash if chunk.chunk_index == 0 else "",
                chunk.embedding,
                chunk.dimensions,
                scope,
                updated_at,
                file.title if chunk.content else "",
                file.file_stat if chunk.chunk_index == 0 else "",
            )
            for file in files
            for chunk in file.chunks
        ),
    )


def update_stats(conn: sqlite3.Connection, scope: str, stats: Iterable[tuple[str, str]]) -> None:
    """Record a new stat for files whose content hash did not change (touched, not edited)."""
    conn.executemany(
        "UPDATE memory_files SET file_stat = ? WHERE file_path = ? AND chunk_index = 0"
        " AND dir_path = ?",
        ((stat, path, scope) for path, stat in stats),
    )


def delete_files(conn: sqlite3.Connection, scope: str, paths: Sequence[str]) -> None:
    for start in range(0, len(paths), _SQL_BATCH):
        group = paths[start : start + _SQL_BATCH]
        marks = ",".join("?" * len(group))
        conn.execute(
            f"DELETE FROM memory_files WHERE dir_path = ? AND file_path IN ({marks})",
            (scope, *group),
        )


def has_content(conn: sqlite3.Connection, scope: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM memory_files WHERE dir_path IN (?, '') AND content != '' LIMIT 1",
        (scope,),
    ).fetchone()
    return row is not None


def vector_hits(
    conn: sqlite3.Connection, scope: str, query: Sequence[float], limit: int
) -> list[Hit]:
    """Cosine ranking over every stored vector of the query's dimensions (a full scan)."""
    query_norm = norm(query)
    rows = conn.execute(
        "SELECT file_path, chunk_index, content, embedding FROM memory_files"
        " WHERE dir_path IN (?, '') AND dimensions = ? AND content != ''",
        (scope, len(query)),
    )
    scored = (
        Hit(path, index, content, cosine(query, unpack_float32(blob), query_norm))
        for path, index, content, blob in rows
        if blob
    )
    best = heapq.nlargest(2 * limit, scored, key=lambda hit: hit.score)
    return unique_hits(best)[:limit]


def missing_embeddings(
    conn: sqlite3.Connection, scopes: Sequence[str], dimensions: int, limit: int
) -> list[tuple[int, str]]:
    """Content rows without a vector of the configured size (stored while Ollama was down)."""
    marks = ",".join("?" * len(scopes))
    return list(
        conn.execute(
            f"SELECT id, content FROM memory_files WHERE dir_path IN ({marks})"
            " AND content != '' AND dimensions != ? ORDER BY id LIMIT ?",
            (*scopes, dimensions, limit),
        )
    )


def set_embeddings(conn: sqlite3.Connection, rows: Iterable[tuple[int, bytes, int]]) -> None:
    conn.executemany(
        "UPDATE memory_files SET embedding = ?, dimensions = ? WHERE id = ?",
        ((blob, dimensions, row_id) for row_id, blob, dimensions in rows),
    )


def unique_hits(hits: Iterable[Hit]) -> list[Hit]:
    seen: set[tuple[str, int]] = set()
    unique = []
    for hit in hits:
        key = (hit.file_path, hit.chunk_index)
        if key not in seen:
            seen.add(key)
            unique.append(hit)
    return unique
