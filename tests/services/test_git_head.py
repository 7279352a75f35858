"""The branch read from ``.git/HEAD`` matches real git's ``rev-parse --abbrev-ref HEAD``.

Each case builds a real repository with the git CLI in ``tmp_path`` and compares our answer
with git's own (git exiting non-zero means "no branch", as the listing shows it), then checks
that the reader got there without forking git.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from loop_server.services._git_head import branch_from_head
from loop_server.services.git import GitBranchReader

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git CLI")

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True)


def gits_answer(cwd: Path) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=cwd, env=GIT_ENV, capture_output=True
    )
    return done.stdout.decode().strip() if done.returncode == 0 else ""


def repo(tmp_path: Path, *, commit: bool = True) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    if commit:
        git(root, "commit", "-q", "--allow-empty", "-m", "first")
    return root


def _branch(tmp_path: Path) -> Path:
    return repo(tmp_path)


def _nested_branch_name(tmp_path: Path) -> Path:
    root = repo(tmp_path)
    git(root, "checkout", "-q", "-b", "feature/deep/x")
    return root


def _detached(tmp_path: Path) -> Path:
    root = repo(tmp_path)
    git(root, "checkout", "-q", "--detach")
    return root


def _unborn(tmp_path: Path) -> Path:
    return repo(tmp_path, commit=False)


def _subdirectory(tmp_path: Path) -> Path:
    root = repo(tmp_path)
    git(root, "checkout", "-q", "-b", "sub-branch")
    (root / "a" / "b").mkdir(parents=True)
    return root / "a" / "b"


def _packed_refs(tmp_path: Path) -> Path:
    root = repo(tmp_path)
    git(root, "checkout", "-q", "-b", "packed")
    git(root, "pack-refs", "--all")
    assert not (root / ".git" / "refs" / "heads" / "packed").exists()
    return root


def _linked_worktree(tmp_path: Path) -> Path:
    root = repo(tmp_path)
    git(root, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "in-worktree")
    return tmp_path / "wt"


def _detached_worktree(tmp_path: Path) -> Path:
    root = repo(tmp_path)
    git(root, "worktree", "add", "-q", "--detach", str(tmp_path / "wt"))
    return tmp_path / "wt"


def _worktree_subdirectory(tmp_path: Path) -> Path:
    root = repo(tmp_path)
    git(root, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "wt-sub")
    (tmp_path / "wt" / "deeper").mkdir()
    return tmp_path / "wt" / "deeper"


def _no_repository(tmp_path: Path) -> Path:
    plain = tmp_path / "plain"
    plain.mkdir()
    return plain


CASES = {
    "branch": (_branch, "main"),
    "nested branch name": (_nested_branch_name, "feature/deep/x"),
    "detached head": (_detached, "HEAD"),
    "unborn branch": (_unborn, ""),
    "subdirectory": (_subdirectory, "sub-branch"),
    "packed refs": (_packed_refs, "packed"),
    "linked worktree": (_linked_worktree, "in-worktree"),
    "detached worktree": (_detached_worktree, "HEAD"),
    "worktree subdirectory": (_worktree_subdirectory, "wt-sub"),
}


@pytest.mark.parametrize("case", CASES)
async def test_head_file_answers_as_git_does(tmp_path: Path, case: str) -> None:
    make, expected = CASES[case]
    work_dir = make(tmp_path)
    assert gits_answer(work_dir) == expected  # the case is what it claims to be
    assert branch_from_head(str(work_dir)) == expected
    reader = GitBranchReader()
    assert await reader.current_branches([str(work_dir)]) == [expected]
    assert reader.git_forks == 0


async def test_outside_any_repository_there_is_no_branch(tmp_path: Path) -> None:
    plain = _no_repository(tmp_path)
    if gits_answer(plain) != "":
        pytest.skip("tmp_path lies inside a git work tree")
    reader = GitBranchReader()
    assert await reader.current_branches([str(plain), str(tmp_path / "missing"), ""]) == [
        "",
        "",
        "",
    ]
    assert reader.git_forks == 0


async def test_a_head_it_cannot_read_is_asked_of_git(tmp_path: Path) -> None:
    root = repo(tmp_path)
    # A symbolic HEAD outside refs/heads: the file alone cannot say what git prints.
    git(root, "symbolic-ref", "HEAD", "refs/remotes/origin/elsewhere")
    assert branch_from_head(str(root)) is None
    reader = GitBranchReader()
    assert await reader.current_branches([str(root)]) == [gits_answer(root)]
    assert reader.git_forks == 1


async def test_a_broken_dot_git_file_is_asked_of_git(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / ".git").write_text("not a gitdir line\n")
    assert branch_from_head(str(broken)) is None
    reader = GitBranchReader()
    assert await reader.current_branches([str(broken)]) == [""]  # git fails there too
    assert reader.git_forks == 1
