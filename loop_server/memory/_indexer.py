"""Bringing the stored rows of a memory plan's roots in line with the files (SPEC §10).

Per root: list the files (worker thread), load the stored header rows in one read, then work
through the files in batches. A file whose stat (size, mtime, ctime, inode) is the one recorded
is unchanged without being read. Otherwise it is read and hashed (SHA-256 of the trimmed text):
the same hash is unchanged too (only the stat is updated); a new hash replaces all the file's
rows in one transaction with its batch. Rows of files that are gone, now excluded, empty,
unreadable or not UTF-8 are deleted. Only (re)written files count (upstream's ``count``).

Blocking work (walking, reading, hashing, SQL) runs in worker threads in bounded batches, so a
tree of 10^4 files neither blocks the event loop nor sits in memory whole, and cancellation
takes effect between batches (a batch's write is all-or-nothing).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import trio

from loop_server.memory._chunks import content_hash, split_chunks, title_words
from loop_server.memory._embedder import GuardedEmbedder
from loop_server.memory._files import (
    FoundFile,
    RootListing,
    found_below,
    is_within,
    list_root,
    read_regular_file,
    resolve_exclusions,
)
from loop_server.memory._paths import GLOBAL_SCOPE, MemoryPlan, MemoryRoot, within
from loop_server.memory._rows import (
    NewChunk,
    NewFile,
    StoredFile,
    delete_files,
    file_paths,
    load_files,
    missing_embeddings,
    replace_files,
    set_embeddings,
    update_stats,
)
from loop_server.memory._vectors import pack_float32
from loop_server.store import Database
from loop_server.timefmt import now_utc, to_db

log = logging.getLogger(__name__)

# A stat taken this close to a file's last change may miss a write in the same clock tick, so
# it is not recorded as trustworthy (git's "racily clean" problem); the next pass re-hashes.
RACY_SECONDS = 2.0
BATCH_FILES = 256
BATCH_BYTES = 8 * 1024 * 1024
BACKFILL_ROWS = 64

Progress = Callable[[int, int], None]  # (files done, files in total)


@dataclass
class IndexStats:
    scanned: int = 0  # files found under the roots
    indexed: int = 0  # files (re)written: the API's count
    unchanged: int = 0
    skipped: int = 0  # unreadable, not UTF-8, empty, too large
    removed: int = 0  # files whose rows were deleted
    embedded: int = 0  # chunks given a vector after the fact (backfill)
    failed_roots: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Unchanged:
    file_path: str
    file_stat: str | None  # a stat to record, or None when the stored one is current


_Outcome = NewFile | _Unchanged | None  # None: skipped (its rows go)


class KeyedLocks:
    """One ``trio.Lock`` per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[trio.Lock, int]] = {}

    def hold(self, key: object) -> _Held:
        return _Held(self, key)


class _Held:
    def __init__(self, owner: KeyedLocks, key: object) -> None:
        self._owner = owner
        self._key = key

    async def __aenter__(self) -> None:
        lock, users = self._owner._locks.get(self._key, (trio.Lock(), 0))
        self._owner._locks[self._key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._release_user()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._owner._locks[self._key][0].release()
        self._release_user()

    def _release_user(self) -> None:
        lock, users = self._owner._locks[self._key]
        if users == 1:
            del self._owner._locks[self._key]
        else:
            self._owner._locks[self._key] = (lock, users - 1)


class MemoryIndex:
    """Indexes memory plans into the database and knows the embedder (if any)."""

    def __init__(
        self,
        db: Database,
        *,
        max_chunk_chars: int,
        max_file_bytes: int,
        embedder: GuardedEmbedder | None = None,
    ) -> None:
        self.db = db
        self.embedder = embedder
        self._max_chunk_chars = max_chunk_chars
        self._max_file_bytes = max_file_bytes
        # Passes over the same root and scope take turns: the second then sees the first's
        # rows instead of rewriting the same changed files again.
        self._locks = KeyedLocks()

    async def index_plan(
        self, plan: MemoryPlan, *, progress: Progress | None = None, backfill: bool = True
    ) -> IndexStats:
        stats = IndexStats()
        exclusions = await trio.to_thread.run_sync(resolve_exclusions, plan.exclusions)
        listings: list[tuple[MemoryRoot, RootListing]] = []
        for root in plan.roots:
            try:
                listing = await trio.to_thread.run_sync(list_root, root.path, exclusions)
            except OSError as err:  # upstream: a failing path is logged and skipped
                log.warning("memory: skipping %s: %s", root.path, err.strerror or err)
                stats.failed_roots.append(root.path)
                continue
            # Checked on what was walked: the plan checked the path too, but a symlink in it
            # may have been changed since.
            # A root that does not exist (resolved "") has nothing to confine: no warning.
            outside = listing.resolved and not within(listing.resolved, root.confined_to)
            if root.confined_to and outside:
                log.warning(
                    "memory: ignoring project memory path %s: it resolves to %s, outside the "
                    "project dir and memory.project_allowlist",
                    root.path,
                    listing.resolved,
                )
                continue
            listings.append((root, listing))
        total = sum(len(listing.files) for _, listing in listings)
        stats.scanned = total
        done = 0
        if progress is not None:
            progress(0, total)

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress is not None:
                progress(done, total)

        covered: list[str] = []  # resolved project-scope roots, for the scope-wide clean-up
        for root, listing in listings:
            prefix = listing.resolved or root.path
            async with self._locks.hold((root.scope, prefix)):
                await self._index_root(root.scope, prefix, listing.files, stats, advance)
            if root.scope != GLOBAL_SCOPE:
                covered.append(prefix)
        covered += stats.failed_roots  # keep the rows of roots we could not check
        await self._drop_uncovered(plan.project_dir, covered, stats)
        if backfill:
            await self.backfill_embeddings((plan.project_dir, GLOBAL_SCOPE), stats)
        return stats

    async def index_paths(self, plan: MemoryPlan, paths: Sequence[str]) -> IndexStats:
        """Re-index just ``paths`` (files known to have changed, been created or deleted)
        where they lie under ``plan``'s roots; rows of the roots' other files are untouched."""
        stats = IndexStats()
        exclusions = await trio.to_thread.run_sync(resolve_exclusions, plan.exclusions)
        located = await trio.to_thread.run_sync(_locate, plan, paths, exclusions)
        for root, prefix, asked, found in located:
            stats.scanned += len(found)
            async with self._locks.hold((root.scope, prefix)):
                await self._index_root(root.scope, prefix, found, stats, _ignore, only=asked)
        return stats

    async def _index_root(
        self,
        scope: str,
        prefix: str,
        files: Sequence[FoundFile],
        stats: IndexStats,
        advance: Callable[[int], None],
        *,
        only: Sequence[str] | None = None,
    ) -> None:
        """``only``: the paths in question (the rest of ``prefix``'s rows stay as they are);
        ``None``: all of ``prefix``, so rows of files not in ``files`` are deleted."""
        if only is None:
            stored = await self.db.read(lambda conn: load_files(conn, scope, prefix))
        else:
            stored = await self.db.read(partial(_load_exact, scope, only))
        kept: set[str] = set()
        for batch in _batches(files):
            outcomes = await self._prepare(batch, stored)
            new_files = [o for o in outcomes if isinstance(o, NewFile)]
            touched = [
                (o.file_path, o.file_stat)
                for o in outcomes
                if isinstance(o, _Unchanged) and o.file_stat is not None
            ]
            if new_files and self.embedder is not None:
                new_files = await self._embed_files(new_files)
            if new_files or touched:
                await self.db.write(partial(_write_batch, scope, new_files, touched))
            for outcome in outcomes:
                if outcome is None:
                    stats.skipped += 1
                    continue
                kept.add(outcome.file_path)
                if isinstance(outcome, NewFile):
                    stats.indexed += 1
                else:
                    stats.unchanged += 1
            advance(len(batch))
        gone = sorted(set(stored) - kept)
        if gone:
            await self.db.write(lambda conn: delete_files(conn, scope, gone))
            stats.removed += len(gone)

    async def _prepare(
        self, batch: Sequence[FoundFile], stored: dict[str, StoredFile]
    ) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        to_read = []
        for found in batch:
            known = stored.get(found.path)
            if known is not None and known.file_stat and known.file_stat == found.stat_key:
                outcomes.append(_Unchanged(found.path, None))
            else:
                to_read.append(found)
        if to_read:
            outcomes += await trio.to_thread.run_sync(self._read_files, to_read, stored)
        return outcomes

    def _read_files(
        self, batch: Sequence[FoundFile], stored: dict[str, StoredFile]
    ) -> list[_Outcome]:
        now = time.time()
        outcomes: list[_Outcome] = []
        for found in batch:
            content = self._read_text(found.path)
            if content is None:
                outcomes.append(None)
                continue
            file_stat = found.stat_key if now - found.settled_at >= RACY_SECONDS else ""
            digest = content_hash(content)
            known = stored.get(found.path)
            if known is not None and known.content_hash == digest:
                changed_stat = file_stat if file_stat != known.file_stat else None
                outcomes.append(_Unchanged(found.path, changed_stat))
                continue
            outcomes.append(self._new_file(found.path, content, digest, file_stat))
        return outcomes

    def _read_text(self, path: str) -> str | None:
        try:
            raw = read_regular_file(path, self._max_file_bytes)
        except FileNotFoundError:
            return None  # deleted since it was listed
        except OSError as err:
            log.warning("memory: skipping %s: %s", path, err.strerror or err)
            return None
        if raw is None:
            log.warning(
                "memory: skipping %s: not a regular file, or larger than %d bytes",
                path,
                self._max_file_bytes,
            )
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            log.warning(
                "memory: skipping %s: not valid UTF-8 (byte 0x%02x at offset %d)",
                path,
                raw[err.start],
                err.start,
            )
            return None
        # A byte-order mark is not content; upstream hashes the text trimmed of white space.
        return text.removeprefix("\ufeff").strip() or None

    def _new_file(self, path: str, content: str, digest: str, file_stat: str) -> NewFile:
        title = title_words(path)
        chunks: tuple[NewChunk, ...]
        if len(content) <= self._max_chunk_chars:
            chunks = (NewChunk(0, content, None, 0),)
        else:
            pieces = split_chunks(content, self._max_chunk_chars)
            header = NewChunk(0, "", None, 0)
            chunks = (
                header,
                *(NewChunk(i, piece, None, 0) for i, piece in enumerate(pieces, start=1)),
            )
        return NewFile(path, digest, file_stat, title, chunks)

    async def _embed_files(self, files: list[NewFile]) -> list[NewFile]:
        assert self.embedder is not None
        texts = [chunk.content for file in files for chunk in file.chunks if chunk.content]
        vectors = await self.embedder.embed(texts)
        if vectors is None:
            return files  # stored without vectors; backfill_embeddings fills them in later
        it = iter(vectors)
        dims = self.embedder.dimensions
        return [
            NewFile(
                file.file_path,
                file.content_hash,
                file.file_stat,
                file.title,
                tuple(
                    NewChunk(c.chunk_index, c.content, pack_float32(next(it)), dims)
                    if c.content
                    else c
                    for c in file.chunks
                ),
            )
            for file in files
        ]

    async def _drop_uncovered(self, scope: str, covered: list[str], stats: IndexStats) -> None:
        """Delete project-scope rows under no current root (a path removed from the config)."""
        paths = await self.db.read(lambda conn: file_paths(conn, scope))
        exact = set(covered)
        below = tuple(root.rstrip(os.sep) + os.sep for root in covered)
        stale = [path for path in paths if path not in exact and not path.startswith(below)]
        if stale:
            await self.db.write(lambda conn: delete_files(conn, scope, stale))
            stats.removed += len(stale)

    async def backfill_embeddings(self, scopes: Sequence[str], stats: IndexStats) -> None:
        """Give vectors to rows stored while the embedder was unavailable."""
        embedder = self.embedder
        while embedder is not None and embedder.available:
            dims = embedder.dimensions
            rows = await self.db.read(partial(_missing, scopes, dims))
            if not rows:
                return
            vectors = await embedder.embed([content for _, content in rows])
            if vectors is None:
                return
            update = [
                (row_id, pack_float32(vector), dims)
                for (row_id, _), vector in zip(rows, vectors, strict=True)
            ]
            await self.db.write(partial(_set_embeddings, update))
            stats.embedded += len(update)


def _ignore(count: int) -> None:
    pass


def _load_exact(
    scope: str, paths: Sequence[str], conn: sqlite3.Connection
) -> dict[str, StoredFile]:
    stored: dict[str, StoredFile] = {}
    for path in paths:
        stored.update((p, f) for p, f in load_files(conn, scope, path).items() if p == path)
    return stored


def _locate(
    plan: MemoryPlan, paths: Sequence[str], exclusions: tuple[str, ...]
) -> list[tuple[MemoryRoot, str, list[str], list[FoundFile]]]:
    """Per root: its resolved prefix, the given paths under it, and those still indexable."""
    located = []
    for root in plan.roots:
        if not os.path.exists(root.path):
            continue
        prefix = os.path.realpath(root.path)
        asked = [p for p in paths if is_within(p, prefix)]
        if not asked:
            continue
        found = [f for f in (found_below(p, prefix, exclusions) for p in asked) if f is not None]
        located.append((root, prefix, asked, found))
    return located


def _missing(scopes: Sequence[str], dims: int, conn: sqlite3.Connection) -> list[tuple[int, str]]:
    return missing_embeddings(conn, scopes, dims, BACKFILL_ROWS)


def _set_embeddings(update: list[tuple[int, bytes, int]], conn: sqlite3.Connection) -> None:
    set_embeddings(conn, update)


def _write_batch(
    scope: str, new_files: list[NewFile], touched: list[tuple[str, str]], conn: sqlite3.Connection
) -> None:
    replace_files(conn, scope, new_files, to_db(now_utc()))
    update_stats(conn, scope, touched)


def _batches(files: Sequence[FoundFile]) -> list[Sequence[FoundFile]]:
    batches = []
    start = 0
    size = 0
    for end, found in enumerate(files):
        size += found.size
        if end + 1 - start >= BATCH_FILES or size >= BATCH_BYTES:
            batches.append(files[start : end + 1])
            start, size = end + 1, 0
    if start < len(files):
        batches.append(files[start:])
    return batches
