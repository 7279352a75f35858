"""The git branch shown in channel listings (SPEC §3.1 step 8)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

import trio

from loop_server.services._git_head import branch_from_head

BRANCH_TIMEOUT_SEC = 2.0
#: How old the branches of a repeated listing may be. A branch is the state of a file nobody
#: tells the server about (``git checkout`` in a terminal or a container), so the listing reads
#: ``HEAD`` again at most this long after it last did; new or changed channel dirs are read at once.
BRANCH_MAX_AGE_SEC = 1.0


def _branches_from_heads(dir_paths: Sequence[str]) -> list[str | None]:
    # A missing dir (the usual loop-dir fallback) has no branch; a stat settles that.
    return [branch_from_head(d) if d and os.path.isdir(d) else "" for d in dir_paths]


class GitBranchReader:
    """Reads branches from ``.git/HEAD`` (``_git_head``); forks ``git rev-parse --abbrev-ref
    HEAD`` only for a repository that file cannot answer for. Any failure means "no branch"."""

    def __init__(self, *, max_concurrent: int = 8, max_age: float = BRANCH_MAX_AGE_SEC) -> None:
        # Listing many channels must not fork an unbounded number of git processes.
        self._limiter = trio.CapacityLimiter(max_concurrent)
        self.git_forks = 0  # how often git was run (the listing's cost should not include it)
        self.reads = 0  # how often HEAD files were read (one thread hop for a whole listing)
        self._max_age = max_age
        # The last answer, for the same list of dirs asked again (the listing passes the same
        # list object while its channels are unchanged): (dirs, branches, read at).
        self._last: tuple[Sequence[str], list[str], float] | None = None

    async def current_branch(self, dir_path: str) -> str:
        return (await self.current_branches([dir_path]))[0]

    async def current_branches(self, dir_paths: Sequence[str]) -> list[str]:
        """The branch of each dir, in order: one worker-thread hop for all of them. Asked again
        with the same sequence object within ``max_age``, the previous answer (the same list:
        do not change it)."""
        now = trio.current_time()
        last = self._last
        if last is not None and last[0] is dir_paths and now - last[2] < self._max_age:
            return last[1]
        self.reads += 1
        found = await trio.to_thread.run_sync(_branches_from_heads, list(dir_paths))
        results = [branch or "" for branch in found]
        unknown = [i for i, branch in enumerate(found) if branch is None]
        if unknown:
            async with trio.open_nursery() as nursery:
                for i in unknown:

                    async def ask(i: int = i) -> None:
                        results[i] = await self._ask_git(dir_paths[i])

                    nursery.start_soon(ask)
        self._last = (dir_paths, results, now)  # "now": from before the files were read
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
