"""Keeping a project's memory index fresh from inotify, so a search need not walk the tree.

Why: a search must see every note written before it was asked, and re-walking the project's
roots to find out costs a ``stat`` per file (over a second at 10^5 files). Instead each project
searched once gets inotify watches on every directory of its roots; events name the ``.md``
files touched since, and the next search re-indexes just those before it answers.

The guarantee: Linux queues an inotify event before the write, rename or unlink that caused it
returns, and a search drains the queue before it looks at the index. So a search sees every
change that finished before the search began; nothing is stale. A full walk (what every search
did before) happens only when the events cannot say what changed:

* the first search of a project, or after its plan (roots, exclusions) changed;
* a directory created, moved or deleted under a root (it needs watches of its own), a watched
  directory itself deleted or moved, or a missing root (or one of its parents) appearing;
* the kernel's event queue overflowed (``IN_Q_OVERFLOW``);
* re-indexing the touched files failed.

Where inotify is missing (not Linux) or a project's watches cannot be added (the per-user limit
``fs.inotify.max_user_watches``), searches of that project walk the tree as before: still
fresh, only slower. What inotify cannot see at all — a write through another kernel (a network
file system changed on another machine), a symlinked root pointed elsewhere — is caught by the
periodic re-index (``reindex_interval_sec``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from loop_server.memory._files import MARKDOWN_SUFFIX, is_excluded, is_within, resolve_exclusions
from loop_server.memory._paths import MemoryPlan

try:
    import inotify_simple  # type: ignore[import-untyped]
except ImportError:  # not Linux: searches walk the tree
    inotify_simple = None

log = logging.getLogger(__name__)

# Kernel values (linux/inotify.h), spelled out so this module imports anywhere.
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_MODIFY = 0x2
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_ISDIR = 0x40000000
WATCH_MASK = (
    IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MODIFY
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
_SELF_GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED
_ENTRY_MOVED = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO

FullPass = Callable[[MemoryPlan], Awaitable[object]]
PathsPass = Callable[[MemoryPlan, Sequence[str]], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class WatchedRoot:
    path: str  # resolved; for a missing root, the path as configured
    exists: bool


@dataclass(eq=False)
class ProjectWatch:
    plan: MemoryPlan
    roots: tuple[WatchedRoot, ...] = ()
    exclusions: tuple[str, ...] = ()
    needs_full: bool = True
    unwatchable: bool = False  # watches could not be added: every search walks
    touched: set[str] = field(default_factory=set)
    wds: set[int] = field(default_factory=set)
    lock: trio.Lock = field(default_factory=trio.Lock)


@dataclass(frozen=True, slots=True)
class WatcherStatistics:
    active: bool
    projects: int
    watches: int
    full_passes: int  # searches that walked the roots
    path_passes: int  # searches that re-indexed only touched files
    clean_searches: int  # searches answered with nothing to re-index


def _directories(root: str, exclusions: tuple[str, ...]) -> list[str]:
    """Every directory at or under ``root``, symlinked ones not followed (as the walk)."""
    found = []
    pending = [root]
    while pending:
        directory = pending.pop()
        found.append(directory)
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue  # the walk logs it; an event or the periodic pass catches it later
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False) and not is_excluded(entry.path, exclusions):
                    pending.append(entry.path)
            except OSError:
                continue
    return found


def _nearest_existing(path: str) -> str:
    current = path
    while not os.path.isdir(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


class MemoryWatcher:
    """Run ``run`` in a nursery; until it runs (and after it ends) ``freshen`` walks."""

    def __init__(self) -> None:
        self._inotify: Any = None
        self._projects: dict[str, ProjectWatch] = {}
        self._owners: dict[int, set[str]] = {}  # watch descriptor → project dirs
        self._dirs: dict[int, str] = {}  # watch descriptor → the directory it watches
        self._full = 0
        self._paths = 0
        self._clean = 0

    @property
    def active(self) -> bool:
        return self._inotify is not None

    def statistics(self) -> WatcherStatistics:
        return WatcherStatistics(
            self.active,
            len(self._projects),
            len(self._dirs),
            self._full,
            self._paths,
            self._clean,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if inotify_simple is None:
            log.info("memory: no inotify here; each search walks its project's memory paths")
            task_status.started()
            return
        try:
            self._inotify = inotify_simple.INotify(nonblocking=True)
        except OSError as err:
            log.warning("memory: inotify unavailable (%s); searches walk the tree", err)
            task_status.started()
            return
        task_status.started()
        try:
            while True:
                await trio.lowlevel.wait_readable(self._inotify.fileno())
                self.drain()
        finally:
            inotify, self._inotify = self._inotify, None
            self._projects.clear()
            self._owners.clear()
            self._dirs.clear()
            inotify.close()

    def drain(self) -> None:
        """Apply every queued event now (a read that never blocks)."""
        if self._inotify is None:
            return
        for event in self._inotify.read(timeout=0):
            self._apply(event.wd, event.mask, event.name)

    async def freshen(self, plan: MemoryPlan, full: FullPass, paths: PathsPass) -> None:
        """Bring ``plan``'s rows up to date with the least work the events allow."""
        if not self.active:
            self._full += 1
            await full(plan)
            return
        self.drain()
        state = self._projects.get(plan.project_dir)
        if state is None or state.plan != plan:
            if state is not None:
                self._forget(state)
            state = self._projects[plan.project_dir] = ProjectWatch(plan)
        async with state.lock:
            self.drain()
            if state.unwatchable or state.needs_full:
                await self._full_pass(state, full)
            elif state.touched:
                touched, state.touched = sorted(state.touched), set()
                self._paths += 1
                try:
                    await paths(plan, touched)
                except BaseException:
                    state.needs_full = True
                    raise
            else:
                self._clean += 1

    async def _full_pass(self, state: ProjectWatch, full: FullPass) -> None:
        self._full += 1
        if not state.unwatchable:
            # Watches first, walk second: a change during the walk is then either seen by
            # the walk or queued as an event for the next search.
            state.needs_full = False
            state.touched.clear()
            try:
                await self._register(state)
            except OSError as err:
                log.warning(
                    "memory: cannot watch %s (%s); its searches walk the tree",
                    state.plan.project_dir,
                    err.strerror or err,
                )
                self._forget(state)
                state.unwatchable = True
        try:
            await full(state.plan)
        except BaseException:
            state.needs_full = True
            raise

    async def _register(self, state: ProjectWatch) -> None:
        exclusions = await trio.to_thread.run_sync(resolve_exclusions, state.plan.exclusions)
        roots: list[WatchedRoot] = []
        targets: list[str] = []
        for root in state.plan.roots:
            resolved = await trio.to_thread.run_sync(os.path.realpath, root.path)
            if await trio.to_thread.run_sync(os.path.isdir, resolved):
                roots.append(WatchedRoot(resolved, True))
                targets += await trio.to_thread.run_sync(_directories, resolved, exclusions)
            elif await trio.to_thread.run_sync(os.path.exists, resolved):
                roots.append(WatchedRoot(resolved, True))  # a single file: watch its dir
                targets.append(os.path.dirname(resolved))
            else:
                roots.append(WatchedRoot(root.path, False))
                targets.append(await trio.to_thread.run_sync(_nearest_existing, root.path))
        state.roots, state.exclusions = tuple(roots), exclusions
        added = await trio.to_thread.run_sync(self._add_watches, targets)
        for wd, directory in added:
            self._dirs[wd] = directory
            self._owners.setdefault(wd, set()).add(state.plan.project_dir)
            state.wds.add(wd)

    def _add_watches(self, directories: list[str]) -> list[tuple[int, str]]:
        inotify = self._inotify
        if inotify is None:
            raise OSError("the watcher has stopped")
        added = []
        for directory in dict.fromkeys(directories):
            try:
                added.append((inotify.add_watch(directory, WATCH_MASK), directory))
            except FileNotFoundError:
                continue  # gone since it was listed: its parent's event says so
            except NotADirectoryError:
                continue
        return added

    def _forget(self, state: ProjectWatch) -> None:
        for wd in state.wds:
            owners = self._owners.get(wd)
            if owners is None:
                continue
            owners.discard(state.plan.project_dir)
            if not owners:
                del self._owners[wd]
                self._dirs.pop(wd, None)
                # OSError: the kernel dropped it already (directory deleted).
                with contextlib.suppress(OSError):
                    if self._inotify is not None:
                        self._inotify.rm_watch(wd)
        state.wds.clear()
        if self._projects.get(state.plan.project_dir) is state:
            del self._projects[state.plan.project_dir]

    def _apply(self, wd: int, mask: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:
            for state in self._projects.values():
                state.needs_full = True
            return
        directory = self._dirs.get(wd)
        owners = self._owners.get(wd, set())
        if mask & _SELF_GONE:
            if mask & IN_IGNORED:
                self._owners.pop(wd, None)
                self._dirs.pop(wd, None)
            for project in owners:
                if project in self._projects:
                    self._projects[project].needs_full = True
            return
        if directory is None or not name:
            return
        path = os.path.join(directory, name)
        for project in owners:
            owner = self._projects.get(project)
            if owner is not None:
                self._note(owner, path, mask)

    @staticmethod
    def _note(state: ProjectWatch, path: str, mask: int) -> None:
        for root in state.roots:
            if not root.exists:
                if is_within(root.path, path):  # the root or one of its parents appeared
                    state.needs_full = True
                continue
            if not is_within(path, root.path) or is_excluded(path, state.exclusions):
                continue
            if mask & IN_ISDIR:
                if mask & _ENTRY_MOVED:
                    state.needs_full = True  # a new or vanished directory of notes
            elif path.endswith(MARKDOWN_SUFFIX):
                state.touched.add(path)
