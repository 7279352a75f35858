"""The soak benchmark, kept short (issue: "kept short in CI, long in benchmarks/").

``benchmarks/soak.py`` drives a real ``loop-server serve`` process with mixed REST, events
(live and replaying) and, with Docker, terminal load, and exits non-zero on any failed
operation, an unclean SIGTERM exit or a database that fails ``PRAGMA integrity_check``. Here
it runs for a quarter of a minute; its figures are not looked at (no timing in tests), only
that nothing failed. The 30-minute figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import trio

from tests.hardening._process import server_env

ROOT = Path(__file__).resolve().parents[2]


async def test_a_short_soak_has_no_errors(loop_test_image: object, tmp_path: Path) -> None:
    env = server_env(tmp_path)
    with trio.fail_after(180):
        done = await trio.run_process(
            [sys.executable, "benchmarks/soak.py", "--minutes", "0.25", "--docker", "on"],
            cwd=ROOT,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    report = done.stdout.decode(errors="replace")
    detail = f"{report}\n{done.stderr.decode(errors='replace')[-3000:]}"
    assert done.returncode == 0, detail
    assert "| errors | 0 |" in report, detail
    assert "| unexpected event-socket closes | 0 |" in report, detail
    cycles = re.search(r"^\| terminal cycles \| (\d+) \|$", report, re.MULTILINE)
    assert cycles is not None and int(cycles.group(1)) >= 1, detail  # the terminal load ran
