"""Finding and reading memory files on disk (blocking; callers run these in a worker thread).

Rules (SPEC §10, plus what a host-side reader of agent-writable trees needs):

* A root may be a directory (walked recursively) or a single ``.md`` file. A symlinked root is
  followed; symlinked directories inside it are not descended (as upstream's ``WalkDir``), so a
  link cycle cannot make the walk endless.
* Only regular files named ``*.md`` are indexed. A symlinked ``.md`` file is indexed only when
  its target lies inside the same (resolved) root: agents can create links in the project dir,
  and a link to ``~/.ssh/…`` must not make a host file searchable.
* Exclusions match a path equal to them or below them (``/m/drafts`` excludes ``/m/drafts/x.md``
  but not ``/m/drafts-v2/x.md``), compared after symlink resolution on both sides.
* Files are opened non-blocking and checked to be regular before reading, so a FIFO named
  ``x.md`` cannot hang the indexer, and a size cap bounds memory.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MARKDOWN_SUFFIX = ".md"
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class FoundFile:
    path: str  # where the walk met it (below the resolved root)
    stat_key: str  # size, mtime, ctime and inode of the file it points to
    size: int
    # The earlier of mtime and ctime (seconds since the epoch). A write in the same clock tick
    # as our stat leaves the stat unchanged only if both were already in that tick, so the
    # stat is trustworthy once the earlier of the two is safely in the past.
    settled_at: float


def found_file(path: str, info: os.stat_result) -> FoundFile:
    return FoundFile(path, stat_key(info), info.st_size, min(info.st_mtime, info.st_ctime))


def stat_key(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def is_within(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or below it, never merely sharing a name prefix."""
    if path == prefix:
        return True
    base = prefix if prefix.endswith(os.sep) else prefix + os.sep
    return path.startswith(base)


def is_excluded(path: str, exclusions: Iterable[str]) -> bool:
    return any(is_within(path, excluded) for excluded in exclusions)


def resolve_exclusions(exclusions: Iterable[str]) -> tuple[str, ...]:
    # realpath never fails: a path that does not exist (yet) is kept as far as it resolves.
    return tuple(dict.fromkeys(os.path.realpath(path) for path in exclusions))


def read_regular_file(path: str, max_bytes: int) -> bytes | None:
    """The bytes of a regular file of at most ``max_bytes``; ``None`` for anything else
    (FIFO, device, directory, too large). ``OSError`` when it cannot be opened."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        chunks = []
        remaining = max_bytes + 1  # one byte more than allowed tells "grew past the cap"
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        return None if len(data) > max_bytes else data
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class RootListing:
    resolved: str  # the root after symlink resolution ("" when it does not exist)
    files: tuple[FoundFile, ...]


def list_root(root: str, exclusions: tuple[str, ...]) -> RootListing:
    """Every indexable file under ``root`` (resolved exclusions expected), sorted by path."""
    if not os.path.exists(root):
        return RootListing("", ())
    resolved = os.path.realpath(root)
    if is_excluded(resolved, exclusions):
        return RootListing(resolved, ())
    if not os.path.isdir(resolved):
        if not resolved.endswith(MARKDOWN_SUFFIX):
            return RootListing(resolved, ())
        try:
            info = os.stat(resolved)
        except OSError as err:
            log.warning("memory: cannot stat %s: %s", resolved, err.strerror or err)
            return RootListing(resolved, ())
        found = (found_file(resolved, info),) if stat.S_ISREG(info.st_mode) else ()
        return RootListing(resolved, found)
    files = list(_walk(resolved, exclusions))
    files.sort(key=lambda found: found.path)
    return RootListing(resolved, tuple(files))


def _walk(root: str, exclusions: tuple[str, ...]) -> Iterable[FoundFile]:
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as err:
            log.warning("memory: cannot list %s: %s", directory, err.strerror or err)
            continue
        for entry in entries:
            if is_excluded(entry.path, exclusions):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    continue
                if not entry.name.endswith(MARKDOWN_SUFFIX):
                    continue
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if not is_within(target, root):
                        log.warning("memory: skipping %s: it links outside %s", entry.path, root)
                        continue
                    if is_excluded(target, exclusions):
                        continue
                info = entry.stat()  # follows a link to its target
            except OSError as err:
                log.warning("memory: cannot stat %s: %s", entry.path, err.strerror or err)
                continue
            if stat.S_ISREG(info.st_mode):
                yield found_file(entry.path, info)


def found_below(path: str, root: str, exclusions: tuple[str, ...]) -> FoundFile | None:
    """``path`` as the walk of ``root`` (resolved) would find it, or ``None`` when the walk
    would not index it (gone, excluded, not ``.md``, not regular, a link leaving ``root``)."""
    if not path.endswith(MARKDOWN_SUFFIX) or is_excluded(path, exclusions):
        return None
    if not is_within(path, root):
        return None
    try:
        if os.path.islink(path):
            target = os.path.realpath(path)
            if not is_within(target, root) or is_excluded(target, exclusions):
                return None
        info = os.stat(path)
    except OSError:
        return None
    return found_file(path, info) if stat.S_ISREG(info.st_mode) else None
