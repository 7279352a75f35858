"""The git branch shown in channel listings (SPEC §3.1 step 8)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

import trio

from loop_server.services._git_head import branch_from_head

BRANCH_TIMEOUT_SEC = 2.0


def _branches_from_heads(dir_paths: Sequence[str]) -> list[str | None]:
    # A missing dir (the usual loop-dir fallback) has no branch; a stat settles that.
    return [branch_from_head(d) if d and os.path.isdir(d) else "" for d in dir_paths]


class GitBranchReader:
    """Reads branches from ``.git/HEAD`` (``_git_head``); forks ``git rev-parse --abbrev-ref
    HEAD`` only for a repository that file cannot answer for. Any failure means "no branch"."""

    def __init__(self, *, max_concurrent: int = 8) -> None:
        # Listing many channels must not fork an unbounded number of git processes.
        self._limiter = trio.CapacityLimiter(max_concurrent)
        self.git_forks = 0  # how often git was run (the listing's cost should not include it)

    async def current_branch(self, dir_path: str) -> str:
        return (await self.current_branches([dir_path]))[0]

    async def current_branches(self, dir_paths: Sequence[str]) -> list[str]:
        """The branch of each dir, in order: one worker-thread hop for all of them."""
        found = await trio.to_thread.run_sync(_branches_from_heads, list(dir_paths))
        results = [branch or "" for branch in found]
        unknown = [i for i, branch in enumerate(found) if branch is None]
        if unknown:
            async with trio.open_nursery() as nursery:
                for i in unknown:

                    async def ask(i: int = i) -> None:
                        results[i] = await self._ask_git(dir_paths[i])

                    nursery.start_soon(ask)
        return results

    async def _ask_git(self, dir_path: str) -> str:
        async with self._limiter:
            with trio.move_on_after(BRANCH_TIMEOUT_SEC):
                self.git_forks += 1
                try:
                    result = await trio.run_process(
                        ["git", "rev-parse", "--abbrev-ref", "HEAD"],
                        cwd=dir_path,
                        capture_stdout=True,
                        capture_stderr=True,
                        check=False,
                        stdin=subprocess.DEVNULL,
                    )
                except OSError:
                    return ""  # git not installed
                if result.returncode == 0:
                    return result.stdout.decode("utf-8", errors="replace").strip()
        return ""
