"""``loop-server memory index DIR`` as a user runs it: a real process and a real database."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import trio

from loop_server.memory import ProgressBar
from loop_server.memory._progress import render
from tests.memory.conftest import auto_memory, set_project_paths, write

LOOP_SERVER = [sys.executable, "-m", "loop_server"]


async def run(
    args: list[str], home: Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOP_")}
    env["HOME"] = str(home)
    with trio.fail_after(30):
        return await trio.run_process(
            LOOP_SERVER + args,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )


async def test_index_prints_the_count(tmp_path: Path, home: Path, project: Path) -> None:
    data = tmp_path / "data"
    set_project_paths(project, ["docs"])
    write(project / "docs" / "a.md", "alpha")
    write(project / "docs" / "b.md", "beta")
    write(auto_memory(home, project) / "MEMORY.md", "auto memory")
    write(data / "config.json", '{"memory": {"paths": ["!docs/b.md"]}}')
    first = await run(["memory", "index", str(project), "--data-dir", str(data)], home)
    assert first.returncode == 0, first.stderr
    assert first.stdout == b"2\n"
    # stderr is not a terminal here: a summary line, no progress bar.
    assert b"\r" not in first.stderr
    assert b"2 files found, 2 indexed, 0 unchanged" in first.stderr
    second = await run(["memory", "index", str(project), "--data-dir", str(data)], home)
    assert second.stdout == b"0\n"
    assert (data / "loop.db").is_file()


async def test_relative_dir_is_resolved(tmp_path: Path, home: Path, project: Path) -> None:
    set_project_paths(project, ["docs"])
    write(project / "docs" / "a.md", "alpha")
    result = await run(
        ["memory", "index", project.name, "--data-dir", str(tmp_path / "d")], home, project.parent
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"1\n"
    assert str(project).encode() in result.stderr


async def test_errors(tmp_path: Path, home: Path) -> None:
    missing = await run(["memory", "index", str(tmp_path / "nope")], home)
    assert missing.returncode == 2
    assert b"not a directory" in missing.stderr
    no_action = await run(["memory"], home)
    assert no_action.returncode == 2
    assert b"ACTION" in no_action.stderr
    write(tmp_path / "bad.json", '{"memory": {"paths": "docs"}}')
    bad = await run(
        ["memory", "index", str(tmp_path), "--config", str(tmp_path / "bad.json")], home
    )
    assert bad.returncode == 2
    assert b"memory.paths must be a list of strings" in bad.stderr


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal() -> None:
    stream = FakeTerminal()
    bar = ProgressBar(stream)
    bar(0, 4)
    bar(4, 4)
    bar.finish()
    assert (
        stream.getvalue()
        == "\r" + render("indexing", 0, 4) + "\r" + render("indexing", 4, 4) + "\n"
    )
    assert render("indexing", 1, 4) == "indexing [########......................] 1/4 files  25%"
    assert render("indexing", 0, 0).endswith("0/0 files 100%")


def test_progress_bar_elsewhere_is_silent() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar(1, 2)
    bar.finish()
    assert stream.getvalue() == ""
