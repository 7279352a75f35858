"""Indexing real files into a real database: counts, change detection, deletions, scopes,
chunk rows, skipped files (SPEC §10, §7.1)."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

import pytest
import trio

from loop_server.memory import GLOBAL_SCOPE
from loop_server.memory._files import read_regular_file
from loop_server.store import Database
from tests.memory.conftest import (
    auto_memory,
    make_indexer,
    set_project_paths,
    stored_files,
    stored_rows,
    write,
)

LONG_AGO = time.time() - 3600


def age(*paths: Path) -> None:
    """Make files look settled (changed an hour ago), so their stat is trusted."""
    for path in paths:
        os.utime(path, (LONG_AGO, LONG_AGO))


async def test_auto_memory_is_indexed_in_project_scope(
    db: Database, home: Path, project: Path
) -> None:
    memory = auto_memory(home, project)
    note = write(memory / "MEMORY.md", "# Memory\nWe deploy on Fridays.")
    indexer = await make_indexer(db, home)
    assert await indexer.index(str(project)) == 1
    assert await stored_rows(db) == [
        (str(note), 0, str(project), "# Memory\nWe deploy on Fridays.", True)
    ]


async def test_count_is_files_and_unchanged_files_count_zero(
    db: Database, home: Path, project: Path
) -> None:
    set_project_paths(project, ["docs"])
    write(project / "docs" / "a.md", "alpha")
    write(project / "docs" / "b.md", "beta\n" * 3000)  # several chunks, still one file
    indexer = await make_indexer(db, home, max_chunk_chars=1000)
    assert await indexer.index(str(project)) == 2
    assert await indexer.index(str(project)) == 0
    write(project / "docs" / "a.md", "alpha, edited")
    assert await indexer.index(str(project)) == 1


async def test_content_is_trimmed_before_hashing(db: Database, home: Path, project: Path) -> None:
    set_project_paths(project, ["docs"])
    note = write(project / "docs" / "a.md", "\n\n  alpha  \n")
    indexer = await make_indexer(db, home)
    assert await indexer.index(str(project)) == 1
    write(note, "alpha\n\n\n")
    assert await indexer.index(str(project)) == 0
    assert (await stored_rows(db))[0][3] == "alpha"


async def test_unchanged_stat_skips_reading(
    db: Database, home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_project_paths(project, ["docs"])
    notes = [write(project / "docs" / f"n{i}.md", f"note {i}") for i in range(5)]
    age(*notes)
    indexer = await make_indexer(db, home)
    assert await indexer.index(str(project)) == 5
    reads: list[str] = []

    def counting_read(path: str, max_bytes: int) -> bytes | None:
        reads.append(path)
        return read_regular_file(path, max_bytes)

    monkeypatch.setattr("loop_server.memory._indexer.read_regular_file", counting_read)
    assert await indexer.index(str(project)) == 0
    assert reads == []
    # A touch changes the stat: the file is read and hashed again, found unchanged (count 0),
    # and the new stat is recorded so the next pass skips it again.
    os.utime(notes[0])
    age(notes[0])
    assert await indexer.index(str(project)) == 0
    assert reads == [str(notes[0])]
    assert await indexer.index(str(project)) == 0
    assert reads == [str(notes[0])]


async def test_same_size_same_mtime_edit_is_still_seen(
    db: Database, home: Path, project: Path
) -> None:
    set_project_paths(project, ["docs"])
    note = write(project / "docs" / "a.md", "version one")
    age(note)
    indexer = await make_indexer(db, home)
    assert await indexer.index(str(project)) == 1
    write(note, "version two")  # same size
    age(note)  # same mtime as before; the ctime (and so the stat key) still moves
    assert await indexer.index(str(project)) == 1
    assert (await stored_rows(db))[0][3] == "version two"


async def test_racy_stat_is_not_trusted(db: Database, home: Path, project: Path) -> None:
    set_project_paths(project, ["docs"])
    write(project / "docs" / "a.md", "fresh")  # changed just now
    indexer = await make_indexer(db, home)
    await indexer.index(str(project))

    def stats(conn: sqlite3.Connection) -> list[str]:
        return [row[0] for row in conn.execute("SELECT file_stat FROM memory_files")]

    assert await db.read(stats) == [""]


async def test_large_file_rows_header_then_chunks(db: Database, home: Path, project: Path) -> None:
    set_project_paths(project, ["docs"])
    lines = [f"line {i} " + "x" * 40 for i in range(100)]
    note = write(project / "docs" / "big.md", "\n".join(lines))
    indexer = await make_indexer(db, home, max_chunk_chars=500)
    assert await indexer.index(str(project)) == 1
    rows = await stored_rows(db)
    assert rows[0] == (str(note), 0, str(project), "", True)  # header: hash only
    chunks = rows[1:]
    assert [row[1] for row in chunks] == list(range(1, len(chunks) + 1))
    assert all(0 < len(row[3]) <= 500 and not row[4] for row in chunks)
    assert "\n".join(row[3] for row in chunks) == "\n".join(lines)
    # Shrinking the file below the limit replaces all of its rows by one.
    write(note, "small now")
    assert await indexer.index(str(project)) == 1
    assert await stored_rows(db) == [(str(note), 0, str(project), "small now", True)]


async def test_deleted_files_lose_their_rows(db: Database, home: Path, project: Path) -> None:
    set_project_paths(project, ["docs"])
    keep = write(project / "docs" / "keep.md", "keep")
    gone = write(project / "docs" / "sub" / "gone.md", "gone\n" * 2000)
    indexer = await make_indexer(db, home, max_chunk_chars=1000)
    await indexer.index(str(project))
    gone.unlink()
    stats = await indexer.index_with_stats(str(project))
    assert (stats.indexed, stats.removed) == (0, 1)
    assert await stored_files(db) == {str(keep): str(project)}
    assert all(row[0] == str(keep) for row in await stored_rows(db))


async def test_removed_root_and_removed_config_entry(
    db: Database, home: Path, project: Path
) -> None:
    set_project_paths(project, ["docs", "notes"])
    write(project / "docs" / "a.md", "a")
    write(project / "notes" / "b.md", "b")
    indexer = await make_indexer(db, home)
    assert await indexer.index(str(project)) == 2
    set_project_paths(project, ["docs"])  # notes/ still exists but is no longer memory
    await indexer.index(str(project))
    assert list(await stored_files(db)) == [str(project / "docs" / "a.md")]
    for path in (project / "docs").iterdir():
        path.unlink()
    (project / "docs").rmdir()  # a configured root that disappeared
    await indexer.index(str(project))
    assert await stored_files(db) == {}


async def test_newly_excluded_files_lose_their_rows(
    db: Database, home: Path, project: Path
) -> None:
    set_project_paths(project, ["docs"])
    write(project / "docs" / "drafts" / "x.md", "draft")
    write(project / "docs" / "drafts-v2" / "y.md", "v2")
    indexer = await make_indexer(db, home)
    assert await indexer.index(str(project)) == 2
    set_project_paths(project, ["docs", "!docs/drafts"])
    await indexer.index(str(project))
    assert list(await stored_files(db)) == [str(project / "docs" / "drafts-v2" / "y.md")]


async def test_absolute_paths_are_global_scope(
    db: Database, home: Path, project: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    note = write(shared / "team.md", "team rules")
    set_project_paths(project, ["docs"])
    local = write(project / "docs" / "local.md", "local")
    indexer = await make_indexer(db, home, paths=(str(shared),))
    assert await indexer.index(str(project)) == 2
    assert await stored_files(db) == {str(note): GLOBAL_SCOPE, str(local): str(project)}
    # Another project indexing the same global path finds it unchanged.
    other = tmp_path / "other"
    other.mkdir()
    assert await indexer.index(str(other)) == 0
    note.unlink()
    await indexer.index(str(other))
    assert await stored_files(db) == {str(local): str(project)}


async def test_symlinked_root_stores_resolved_paths(
    db: Database, home: Path, project: Path, tmp_path: Path
) -> None:
    real = tmp_path / "real-notes"
    write(real / "a.md", "alpha")
    (project / "notes").symlink_to(real)
    set_project_paths(project, ["notes"])
    # Outside the project: a project's own config may point there only through the allowlist.
    indexer = await make_indexer(db, home, project_allowlist=(str(real),))
    assert await indexer.index(str(project)) == 1
    assert await stored_files(db) == {str(real / "a.md"): str(project)}
    assert await indexer.index(str(project)) == 0


async def test_non_utf8_file_is_skipped_with_a_warning(
    db: Database, home: Path, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    set_project_paths(project, ["docs"])
    write(project / "docs" / "good.md", "fine")
    bad = write(project / "docs" / "bad.md", b"caf\xe9 latin-1")
    indexer = await make_indexer(db, home)
    stats = await indexer.index_with_stats(str(project))
    assert (stats.indexed, stats.skipped) == (1, 1)
    assert f"skipping {bad}: not valid UTF-8 (byte 0xe9 at offset 3)" in caplog.text
    assert list(await stored_files(db)) == [str(project / "docs" / "good.md")]
    # A file that was indexed and turns into invalid UTF-8 loses its rows.
    write(project / "docs" / "good.md", b"\xff\xfe")
    await indexer.index(str(project))
    assert await stored_files(db) == {}


async def test_empty_and_oversized_files_are_skipped(
    db: Database, home: Path, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    set_project_paths(project, ["docs"])
    write(project / "docs" / "empty.md", "  \n\n ")
    write(project / "docs" / "bom.md", "\ufeff# Title")
    write(project / "docs" / "huge.md", "x" * 2000)
    indexer = await make_indexer(db, home, max_file_bytes=1000)
    stats = await indexer.index_with_stats(str(project))
    assert (stats.indexed, stats.skipped) == (1, 2)
    assert (await stored_rows(db))[0][3] == "# Title"
    assert "huge.md: not a regular file, or larger than 1000 bytes" in caplog.text


async def test_fifo_named_md_does_not_hang(db: Database, home: Path, project: Path) -> None:
    set_project_paths(project, ["docs"])
    write(project / "docs" / "a.md", "a")
    os.mkfifo(project / "docs" / "pipe.md")
    indexer = await make_indexer(db, home)
    with trio.fail_after(10):
        assert await indexer.index(str(project)) == 1


async def test_projects_are_separate_scopes(db: Database, home: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for project in (one, two):
        set_project_paths(project, ["docs"])
        write(project / "docs" / "n.md", f"note of {project.name}")
    indexer = await make_indexer(db, home)
    assert await indexer.index(str(one)) == 1
    assert await indexer.index(str(two)) == 1
    assert await stored_files(db) == {
        str(one / "docs" / "n.md"): str(one),
        str(two / "docs" / "n.md"): str(two),
    }


async def test_concurrent_passes_write_each_file_once(
    db: Database, home: Path, project: Path
) -> None:
    set_project_paths(project, ["docs"])
    for i in range(20):
        write(project / "docs" / f"n{i}.md", f"note {i}")
    indexer = await make_indexer(db, home)
    counts: list[int] = []

    async def run() -> None:
        counts.append(await indexer.index(str(project)))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(run)
    assert sorted(counts) == [0, 0, 20]


async def test_relative_dir_is_refused(db: Database, home: Path) -> None:
    indexer = await make_indexer(db, home)
    with pytest.raises(ValueError, match="must be an absolute path"):
        await indexer.index("proj")


async def test_progress_reports_done_and_total(db: Database, home: Path, project: Path) -> None:
    set_project_paths(project, ["docs"])
    for i in range(600):
        write(project / "docs" / f"n{i:03}.md", f"note {i}")
    indexer = await make_indexer(db, home)
    seen: list[tuple[int, int]] = []
    await indexer.index_with_stats(str(project), progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 600)
    assert seen[-1] == (600, 600)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


async def test_a_confined_root_swapped_to_outside_after_the_plan_is_not_indexed(
    db: Database, home: Path, project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    secret = write(tmp_path / "host" / "secret.md", "host secret")
    write(project / "notes" / "mine.md", "mine")
    set_project_paths(project, ["notes"])
    indexer = await make_indexer(db, home)
    plan = await indexer.plan(str(project))
    # Between the plan and the walk, the agent replaces its notes dir with a link out.
    (project / "notes" / "mine.md").unlink()
    (project / "notes").rmdir()
    (project / "notes").symlink_to(secret.parent)
    stats = await indexer._index.index_plan(plan)
    assert stats.indexed == 0
    assert str(secret) not in await stored_files(db)
    assert any("outside the project dir" in r.getMessage() for r in caplog.records)


async def test_a_missing_confined_root_is_skipped_without_a_warning(
    db: Database, home: Path, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A project with no memory/ dir (the default notes root) or a configured path that does not
    # exist yet: nothing to index, and nothing suspicious to log at every search.
    caplog.set_level(logging.WARNING)
    set_project_paths(project, ["not-yet"])
    indexer = await make_indexer(db, home)
    await indexer.index_with_stats(str(project))
    assert not [r for r in caplog.records if "outside the project dir" in r.getMessage()]
