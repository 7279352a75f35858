"""The bounded-cost BM25 query (``_lexical``): which words are ranked, and the fall-backs.

A small ``MATCH_BUDGET`` makes a handful of notes behave like a large corpus."""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path

import pytest

from loop_server.memory import _lexical
from loop_server.memory._lexical import document_counts, lexical_hits, stems
from loop_server.memory._rows import Hit
from loop_server.store import Database
from tests.memory.conftest import make_indexer, set_project_paths, write


def test_stems_are_the_index_tokenizers() -> None:
    assert stems(["running", "Café", "deployed", "...", "x"]) == [
        ["run"],
        ["cafe"],
        ["deploi"],
        [],
        ["x"],
    ]


async def corpus(db: Database, home: Path, project: Path, notes: dict[str, str]) -> None:
    set_project_paths(project, ["notes"])
    for name, text in notes.items():
        write(project / "notes" / name, text)
    await (await make_indexer(db, home)).index(str(project))


def names(hits: list[Hit]) -> list[str]:
    return [Path(hit.file_path).name for hit in hits]


def _counts(words: list[str], conn: sqlite3.Connection) -> list[int]:
    return document_counts(conn, words)


def _hits(scope: Path, words: list[str], limit: int, conn: sqlite3.Connection) -> list[Hit]:
    return lexical_hits(conn, str(scope), words, limit)


async def test_document_counts(db: Database, home: Path, project: Path) -> None:
    await corpus(db, home, project, {"a.md": "run fast", "b.md": "running late", "c.md": "walk"})
    assert await db.read(partial(_counts, ["runs", "walking", "fly"])) == [2, 1, 0]


async def test_common_words_are_left_out_over_budget(
    db: Database, home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = {f"n{i}.md": f"common filler {i}" for i in range(10)}
    notes["zebra.md"] = "common zebra"
    await corpus(db, home, project, notes)
    exact = await db.read(partial(_hits, project, ["common", "zebra"], 20))
    assert len(exact) == 11 and names(exact)[0] == "zebra.md"
    monkeypatch.setattr(_lexical, "MATCH_BUDGET", 5)
    pruned = await db.read(partial(_hits, project, ["common", "zebra"], 20))
    assert names(pruned) == ["zebra.md"]


async def test_all_words_common_ranks_chunks_holding_all(
    db: Database, home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = {f"a{i}.md": "alpha filler" for i in range(6)}
    notes |= {f"b{i}.md": "beta filler" for i in range(6)}
    notes |= {"both1.md": "alpha beta", "both2.md": "alpha beta again"}
    await corpus(db, home, project, notes)
    monkeypatch.setattr(_lexical, "MATCH_BUDGET", 3)
    both = await db.read(partial(_hits, project, ["alpha", "beta"], 2))
    assert sorted(names(both)) == ["both1.md", "both2.md"]
    # Too few chunks hold both: the rarest word's chunks are ranked instead.
    more = await db.read(partial(_hits, project, ["alpha", "beta"], 5))
    assert len(more) == 5


async def test_scope_filter_widens_a_tight_window(db: Database, home: Path, tmp_path: Path) -> None:
    crowded, small = tmp_path / "crowded", tmp_path / "small"
    set_project_paths(crowded, ["notes"])
    for i in range(80):
        write(crowded / "notes" / f"n{i}.md", "zebra zebra")
    set_project_paths(small, ["notes"])
    # One mention in a long note: it ranks below all 80 notes of the other project.
    write(small / "notes" / "mine.md", "zebra " + "padding words here " * 50)
    indexer = await make_indexer(db, home)
    await indexer.index(str(crowded))
    await indexer.index(str(small))
    hits = await db.read(partial(_hits, small, ["zebra"], 5))
    assert names(hits) == ["mine.md"]


async def test_huge_top_k(db: Database, home: Path, project: Path) -> None:
    await corpus(db, home, project, {f"n{i}.md": f"zebra {i}" for i in range(30)})
    hits = await db.read(partial(_hits, project, ["zebra"], 10**9))
    assert len(hits) == 30
