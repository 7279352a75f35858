"""The git branch shown in channel listings (SPEC §3.1 step 8)."""

from __future__ import annotations

import os
import subprocess

import trio

BRANCH_TIMEOUT_SEC = 2.0


class GitBranchReader:
    """Runs ``git rev-parse --abbrev-ref HEAD``; any failure means "no branch"."""

    def __init__(self, *, max_concurrent: int = 8) -> None:
        # Listing many channels must not fork an unbounded number of git processes.
        self._limiter = trio.CapacityLimiter(max_concurrent)

    async def current_branch(self, dir_path: str) -> str:
        # A stat is cheaper than forking git for the usual missing fallback dir.
        if not dir_path or not os.path.isdir(dir_path):  # noqa: ASYNC240
            return ""
        async with self._limiter:
            with trio.move_on_after(BRANCH_TIMEOUT_SEC):
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
