"""The committed console build (``loop_server/console_static/``) is what ``console/src`` builds
to, so ``make run`` (Python only) serves the sources as they are. Runs the real npm and esbuild:
``npm ci`` from the lock file, then ``node build.mjs --check`` (a build into a temp dir,
compared byte for byte). Without npm it skips loudly; in CI (``CI=true``) that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

CONSOLE = Path(__file__).resolve().parents[1] / "console"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs {name} to check the console build", pytrace=False)
        pytest.skip(f"!!! CONSOLE BUILD CHECK SKIPPED: no {name} on PATH")
    return found


async def test_committed_build_matches_the_sources() -> None:
    npm, node = tool("npm"), tool("node")
    with trio.fail_after(600):
        await trio.run_process(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CONSOLE,
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
        )
        checked = await trio.run_process(
            [node, "build.mjs", "--check"],
            cwd=CONSOLE,
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert checked.returncode == 0, checked.stderr.decode()
    assert b"console build matches its sources" in checked.stdout
