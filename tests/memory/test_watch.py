"""Search freshness from inotify: every change made before a search is in its answer, and
the search re-indexes only the touched files (a full walk only where events cannot tell).

Real files, a real SQLite file, the real kernel's inotify. No sleeping: each search drains
the event queue itself, which is the guarantee under test. Rules as in conftest.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from loop_server.memory import MultiPathIndexer
from loop_server.memory._watch import WatcherStatistics
from loop_server.store import Database
from tests.memory.conftest import make_indexer, set_project_paths, write

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux only")


@pytest.fixture
async def watched(
    nursery: trio.Nursery, db: Database, home: Path, project: Path
) -> AsyncIterator[MultiPathIndexer]:
    set_project_paths(project, ["notes", "!notes/drafts"])
    write(project / "notes" / "alpha.md", "alpha talks about kestrels")
    write(project / "notes" / "sub" / "beta.md", "beta talks about herons")
    indexer = await make_indexer(db, home)
    await nursery.start(indexer.watch)
    assert indexer.watcher.active
    yield indexer


async def files_for(indexer: MultiPathIndexer, project: Path, word: str) -> list[str]:
    with trio.fail_after(20):
        results = await indexer.search(str(project), word, 10)
    return sorted(str(Path(r.file_path).relative_to(project)) for r in results or [])


def passes(indexer: MultiPathIndexer) -> tuple[int, int, int]:
    stats: WatcherStatistics = indexer.watcher.statistics()
    return stats.full_passes, stats.path_passes, stats.clean_searches


async def test_changes_are_seen_by_the_next_search_without_a_walk(
    watched: MultiPathIndexer, project: Path
) -> None:
    assert await files_for(watched, project, "kestrels") == ["notes/alpha.md"]
    assert passes(watched) == (1, 0, 0)  # the first search walks and starts watching
    assert await files_for(watched, project, "herons") == ["notes/sub/beta.md"]
    assert passes(watched) == (1, 0, 1)  # nothing changed: no re-index at all

    write(project / "notes" / "gamma.md", "gamma talks about ospreys")  # created
    assert await files_for(watched, project, "ospreys") == ["notes/gamma.md"]
    write(project / "notes" / "sub" / "beta.md", "beta now talks about ospreys")  # rewritten
    assert await files_for(watched, project, "herons") == []
    assert await files_for(watched, project, "ospreys") == ["notes/gamma.md", "notes/sub/beta.md"]
    (project / "notes" / "gamma.md").unlink()  # deleted
    assert await files_for(watched, project, "ospreys") == ["notes/sub/beta.md"]
    os.rename(project / "notes" / "alpha.md", project / "notes" / "renamed.md")
    assert await files_for(watched, project, "kestrels") == ["notes/renamed.md"]
    full, by_path, _ = passes(watched)
    assert full == 1 and by_path == 4  # each change re-indexed its files only


async def test_excluded_and_non_markdown_files_cost_nothing(
    watched: MultiPathIndexer, project: Path
) -> None:
    write(project / "notes" / "drafts" / "secret.md", "drafts talk about albatrosses")
    await files_for(watched, project, "kestrels")
    write(project / "notes" / "drafts" / "secret.md", "still about albatrosses")
    write(project / "notes" / "readme.txt", "albatrosses in plain text")
    assert await files_for(watched, project, "albatrosses") == []
    assert passes(watched) == (1, 0, 1)


async def test_a_new_directory_is_walked_once_then_watched(
    watched: MultiPathIndexer, project: Path
) -> None:
    await files_for(watched, project, "kestrels")
    write(project / "notes" / "new" / "deep" / "delta.md", "delta talks about plovers")
    assert await files_for(watched, project, "plovers") == ["notes/new/deep/delta.md"]
    assert passes(watched)[0] == 2  # a new directory: events cannot list what it holds
    write(project / "notes" / "new" / "deep" / "delta.md", "delta talks about terns")
    assert await files_for(watched, project, "terns") == ["notes/new/deep/delta.md"]
    assert passes(watched)[:2] == (2, 1)  # its own watch saw the rewrite


async def test_a_missing_root_that_appears_is_indexed(
    watched: MultiPathIndexer, project: Path
) -> None:
    set_project_paths(project, ["notes", "later"])  # a changed plan: walked again
    assert await files_for(watched, project, "kestrels") == ["notes/alpha.md"]
    write(project / "later" / "epsilon.md", "epsilon talks about grebes")
    assert await files_for(watched, project, "grebes") == ["later/epsilon.md"]
    assert passes(watched)[0] == 2


async def test_without_the_watcher_every_search_walks(
    db: Database, home: Path, project: Path
) -> None:
    set_project_paths(project, ["notes"])
    write(project / "notes" / "alpha.md", "alpha talks about kestrels")
    indexer = await make_indexer(db, home)
    assert await files_for(indexer, project, "kestrels") == ["notes/alpha.md"]
    write(project / "notes" / "alpha.md", "alpha talks about swifts")
    assert await files_for(indexer, project, "swifts") == ["notes/alpha.md"]
    assert passes(indexer) == (2, 0, 0)


async def test_a_watcher_that_stopped_falls_back_to_walking(
    db: Database, home: Path, project: Path
) -> None:
    set_project_paths(project, ["notes"])
    write(project / "notes" / "alpha.md", "alpha talks about kestrels")
    indexer = await make_indexer(db, home)
    async with trio.open_nursery() as nursery:
        await nursery.start(indexer.watch)
        assert await files_for(indexer, project, "kestrels") == ["notes/alpha.md"]
        nursery.cancel_scope.cancel()
    assert not indexer.watcher.active
    write(project / "notes" / "alpha.md", "alpha talks about swifts")
    assert await files_for(indexer, project, "swifts") == ["notes/alpha.md"]
    assert passes(indexer)[0] == 2
