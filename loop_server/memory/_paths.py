"""Which paths hold a project's memory, and in which scope (docs/memory.md).

Sources, in order (the first mention of a path wins when de-duplicating):

1. Claude's auto-memory dir for the project, ``~/.claude/projects/<dir, "/" → "-">/memory``
   (project scope) — and the same under the Claude state dir the server mounts into its
   containers (``<data-dir>/claude`` by default), where its agents write theirs;
2. the project's own notes dir, ``<dir>/memory`` (project scope, confined like the project
   config's paths below: the agent can replace it with a symlink), so a channel's first search
   finds the notes in its work dir without any configuration;
3. the global config's ``memory.paths``;
4. the project's ``<dir>/.loop/config.json`` → ``memory.paths`` (HuJSON).

An entry starting with ``!`` excludes a path. Relative entries resolve against the project dir
and are project scope (rows carry the project dir as ``dir_path``); absolute entries (``~``
expanded) are global scope (``dir_path = ''``), shared by every project's searches.

The project's own config is written by whoever works in the project, agents included, so its
paths are confined (upstream takes them as they are): each must lie, after symlink resolution,
inside the project dir or inside a dir of the server config's ``memory.project_allowlist``.
Anything else is ignored with a warning; otherwise an agent could have any host dir indexed into
the global scope and read it back through ``search_memory``. The roots carry that confinement,
and the indexer checks it again on the root it actually walks (a symlink can change between
the plan and the walk).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loop_server.hujson import parse_hujson
from loop_server.memory._files import read_regular_file

log = logging.getLogger(__name__)

GLOBAL_SCOPE = ""
PROJECT_CONFIG = os.path.join(".loop", "config.json")
PROJECT_NOTES_DIR = "memory"  # <project dir>/memory: indexed for every project by default
_MAX_PROJECT_CONFIG_BYTES = 1024 * 1024
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


@dataclass(frozen=True, slots=True)
class MemoryRoot:
    path: str  # absolute and normalised; symlinks are resolved when it is walked
    scope: str  # the dir_path its rows carry: the project dir, or GLOBAL_SCOPE
    # Resolved dirs the root must resolve into when walked (empty: anywhere). Set on the
    # entries of a project's own config.
    confined_to: tuple[str, ...] = ()


def within(path: str, dirs: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``dirs`` or below one (separator-safe: ``/a/bc`` is not
    below ``/a/b``)."""
    return any(path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d in dirs)


def confinement(project_dir: str, allowlist: Iterable[str]) -> tuple[str, ...]:
    """The resolved dirs a project's own memory paths may point into."""
    return tuple(dict.fromkeys(os.path.realpath(d) for d in (project_dir, *allowlist)))


def confined_root(root: MemoryRoot) -> bool:
    """Whether ``root`` resolves inside its confinement; logs a warning when it does not.
    Blocking (resolves symlinks): call it in a thread."""
    if not root.confined_to:
        return True
    resolved = os.path.realpath(root.path)
    if within(resolved, root.confined_to):
        return True
    log.warning(
        "memory: ignoring project memory path %s: it resolves to %s, outside the project dir "
        "and memory.project_allowlist",
        root.path,
        resolved,
    )
    return False


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    project_dir: str
    roots: tuple[MemoryRoot, ...]
    exclusions: tuple[str, ...]  # absolute and normalised; resolved when matched


def check_project_dir(dir_path: str) -> str:
    """The scope key of a project dir: absolute, NUL-free, normalised (no trailing slash)."""
    if "\x00" in dir_path:
        raise ValueError("dir_path must not contain NUL bytes")
    if not os.path.isabs(dir_path):
        raise ValueError(f"dir_path {dir_path!r} must be an absolute path")
    return os.path.normpath(dir_path)


def auto_memory_dir(project_dir: str, home: Path, *, claude_dir: Path | None = None) -> str:
    """Claude Code's per-project memory dir (under ``claude_dir``, default ``home/.claude``).

    The documented name is ``<dir with "/" replaced by "-">``; Claude Code itself also
    replaces other non-alphanumeric characters (``.``, ``_``, spaces), so a project path holding
    those is found under the second spelling when only that one exists.
    """
    projects = (claude_dir or home / ".claude") / "projects"
    spec_name = str(projects / project_dir.replace("/", "-") / "memory")
    claude_name = str(projects / _NOT_ALNUM.sub("-", project_dir) / "memory")
    if claude_name != spec_name and not os.path.isdir(spec_name) and os.path.isdir(claude_name):
        return claude_name
    return spec_name


def project_config_paths(project_dir: str) -> list[str]:
    """``memory.paths`` from ``<dir>/.loop/config.json``; unreadable or malformed → none."""
    path = os.path.join(project_dir, PROJECT_CONFIG)
    try:
        raw = read_regular_file(path, _MAX_PROJECT_CONFIG_BYTES)
    except FileNotFoundError:
        return []
    except OSError as err:
        log.warning("memory: ignoring project config %s: %s", path, err.strerror or err)
        return []
    if raw is None:
        log.warning("memory: ignoring project config %s: not a regular file or too large", path)
        return []
    try:
        data = parse_hujson(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        log.warning("memory: ignoring project config %s: not valid JSON: %s", path, err)
        return []
    section = data.get("memory") if isinstance(data, dict) else None
    entries = section.get("paths") if isinstance(section, dict) else None
    if entries is None:
        return []
    if not isinstance(entries, list):
        log.warning("memory: ignoring memory.paths in %s: not a list", path)
        return []
    return [entry for entry in entries if _usable_entry(entry, path)]


def _usable_entry(entry: object, source: str) -> bool:
    if isinstance(entry, str) and entry.strip("!") and "\x00" not in entry:
        return True
    log.warning("memory: ignoring memory.paths entry %r in %s", entry, source)
    return False


def memory_plan(
    project_dir: str,
    global_paths: Sequence[str],
    home: Path,
    *,
    claude_dir: Path | None = None,
    project_allowlist: Sequence[str] = (),
) -> MemoryPlan:
    """Every root to index for ``project_dir`` (already checked by ``check_project_dir``).
    ``claude_dir``: the Claude state dir of the server's containers, if any.
    ``project_allowlist``: dirs outside the project its own config may name."""
    roots: list[MemoryRoot] = [MemoryRoot(auto_memory_dir(project_dir, home), project_dir)]
    if claude_dir is not None:
        roots.append(
            MemoryRoot(auto_memory_dir(project_dir, home, claude_dir=claude_dir), project_dir)
        )
    exclusions: list[str] = []
    confined = confinement(project_dir, project_allowlist)
    notes = MemoryRoot(os.path.join(project_dir, PROJECT_NOTES_DIR), project_dir, confined)
    if confined_root(notes):
        roots.append(notes)
    sources = ((global_paths, ()), (project_config_paths(project_dir), confined))
    for source, confined_to in sources:
        for entry in _entries(source):
            if entry.startswith("!"):  # an exclusion only narrows: never confined
                exclusions.append(_absolute(entry[1:], project_dir, home)[0])
                continue
            path, is_absolute = _absolute(entry, project_dir, home)
            root = MemoryRoot(path, GLOBAL_SCOPE if is_absolute else project_dir, confined_to)
            if confined_root(root):
                roots.append(root)
    seen: set[str] = set()
    unique = []
    for root in roots:
        if root.path not in seen:
            seen.add(root.path)
            unique.append(root)
    return MemoryPlan(project_dir, tuple(unique), tuple(dict.fromkeys(exclusions)))


def _entries(*sources: Iterable[str]) -> Iterable[str]:
    for source in sources:
        for entry in source:
            entry = entry.strip()
            if entry and entry != "!":
                yield entry


def _absolute(entry: str, project_dir: str, home: Path) -> tuple[str, bool]:
    if entry == "~" or entry.startswith("~/"):
        entry = str(home) + entry[1:]
    if os.path.isabs(entry):
        return os.path.normpath(entry), True
    return os.path.normpath(os.path.join(project_dir, entry)), False
