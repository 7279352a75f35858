"""The checked-out branch of a directory, read from the repository's ``HEAD`` file.

Why not ``git rev-parse --abbrev-ref HEAD``: forking git costs milliseconds per directory, and
the channel listing would pay it for every channel on every call. Reading ``HEAD`` is a few
small file reads. The answers match git's for the cases that occur in practice:

* a branch checked out → its name (``feature/x`` for ``refs/heads/feature/x``);
* a detached head (a commit id in ``HEAD``) → ``"HEAD"``, as git prints;
* a branch with no commit yet (fresh ``git init``) → ``""``: git fails there;
* a subdirectory of a work tree → the work tree's branch (the search walks up, as git does);
* a linked work tree (``.git`` is a file ``gitdir: …``) → that work tree's own ``HEAD``, with
  branch refs looked up in the shared repository (``commondir``);
* no repository → ``""``.

Anything else (a reftable repository, a ``HEAD`` naming a ref outside ``refs/heads``, an
unreadable file) answers ``None``: "cannot tell", and the caller asks git itself.
"""

from __future__ import annotations

import os
import re

_COMMIT_ID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_BRANCH_PREFIX = "refs/heads/"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(4096).strip()
    except OSError:
        return None


def _git_dir(dir_path: str) -> str | None:
    """The git dir of the work tree containing ``dir_path``; "" when there is none."""
    current = os.path.abspath(dir_path)
    while True:
        dot_git = os.path.join(current, ".git")
        if os.path.isdir(dot_git):
            return dot_git
        if os.path.isfile(dot_git):
            text = _read(dot_git)
            if text is None or not text.startswith("gitdir:"):
                return None
            target = text[len("gitdir:") :].strip()
            return os.path.normpath(os.path.join(current, target))
        parent = os.path.dirname(current)
        if parent == current:
            return ""
        current = parent


def _common_dir(git_dir: str) -> str:
    text = _read(os.path.join(git_dir, "commondir"))
    if not text:
        return git_dir
    return os.path.normpath(os.path.join(git_dir, text))


def _branch_exists(common_dir: str, ref: str) -> bool:
    if os.path.isfile(os.path.join(common_dir, ref)):
        return True
    packed = _read(os.path.join(common_dir, "packed-refs"))
    if not packed:
        return False
    return any(line.endswith(" " + ref) for line in packed.splitlines())


def branch_from_head(dir_path: str) -> str | None:
    """``dir_path``'s branch as ``git rev-parse --abbrev-ref HEAD`` would print it (module doc);
    ``None`` when only git can tell."""
    git_dir = _git_dir(dir_path)
    if not git_dir:
        return git_dir  # None (unreadable .git file) or "" (not in a repository)
    head = _read(os.path.join(git_dir, "HEAD"))
    if head is None:
        return None
    if _COMMIT_ID.fullmatch(head):
        return "HEAD"
    if not head.startswith("ref:"):
        return None
    ref = head[len("ref:") :].strip()
    common = _common_dir(git_dir)
    if not ref.startswith(_BRANCH_PREFIX) or os.path.exists(os.path.join(common, "reftable")):
        return None
    return ref[len(_BRANCH_PREFIX) :] if _branch_exists(common, ref) else ""
