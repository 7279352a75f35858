"""Lexical search (FTS5, BM25, Porter stemming): relevance on a small corpus, scopes, the
result shape and the "nothing indexed" answer (SPEC §3.14, §10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loop_server.memory import MultiPathIndexer
from loop_server.memory._query import fts_match, query_terms
from loop_server.protocols import MemorySearchResult
from loop_server.store import Database
from tests.memory.conftest import make_indexer, set_project_paths, write

CORPUS = {
    "deploy.md": """# Deploying
To ship a release to production, tag the commit and run `make release`. The pipeline builds
the image, pushes it to the registry and rolls the new version out to production servers.
Roll back with `make rollback` if health checks fail after a deploy.""",
    "database.md": """# Database
We use PostgreSQL 16 for persistent data. Migrations live in db/migrations and run with
`make migrate`. Backups of the database are taken nightly and kept for 30 days.""",
    "testing.md": """# Tests
The test suite uses pytest. Start it with `make test`; integration tests need Docker.
Flaky tests are quarantined with the `flaky` marker until fixed.""",
    "onboarding.md": """# Onboarding
New engineers get a laptop, an account on the VPN and access to the wiki in their first
week. Pair with a buddy for the first two weeks.""",
    "style.md": """# Code style
Format Python with ruff, keep functions short, name things for what they are in the domain.
Comments explain why, not what.""",
    "oncall.md": """# On-call
The on-call engineer answers pages within 15 minutes. Escalate to the team lead when an
incident affects customers for more than an hour.""",
    "jogging.md": """# Team sport
Every Thursday we run five kilometres along the river before lunch.""",
}


@pytest.fixture
async def indexer(db: Database, home: Path, project: Path) -> MultiPathIndexer:
    set_project_paths(project, ["notes"])
    for name, text in CORPUS.items():
        write(project / "notes" / name, text)
    return await make_indexer(db, home)


def names(results: list[MemorySearchResult] | None) -> list[str]:
    assert results is not None
    return [Path(r.file_path).name for r in results]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How do I deploy a new version to production?", "deploy.md"),
        ("What database do we use and where are the migrations?", "database.md"),
        ("how to run the tests", "testing.md"),
        ("what happens in the first week for new engineers", "onboarding.md"),
        ("who do I escalate an incident to", "oncall.md"),
        ("how should comments be written", "style.md"),
    ],
)
async def test_the_right_file_ranks_first(
    indexer: MultiPathIndexer, project: Path, question: str, expected: str
) -> None:
    results = await indexer.search(str(project), question, 3)
    assert names(results)[0] == expected


async def test_stemming_running_finds_run(indexer: MultiPathIndexer, project: Path) -> None:
    assert "running" not in CORPUS["jogging.md"]
    results = await indexer.search(str(project), "running", 5)
    assert names(results)[0] == "jogging.md"
    # And the other way round: "deployed" finds "Deploying" and "deploy".
    assert names(await indexer.search(str(project), "deployed", 5))[0] == "deploy.md"


async def test_results_shape_and_order(indexer: MultiPathIndexer, project: Path) -> None:
    results = await indexer.search(str(project), "make release rollback production", 3)
    assert results is not None
    best = results[0]
    assert best.file_path == str(project / "notes" / "deploy.md")
    assert best.content == CORPUS["deploy.md"]
    assert best.chunk_index == 0
    assert isinstance(best.score, float)
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)


async def test_top_k_default_and_limit(indexer: MultiPathIndexer, project: Path) -> None:
    question = "the team engineers make tests data week ruff"
    assert len(await indexer.search(str(project), question, 0) or []) == 5
    assert len(await indexer.search(str(project), question, -3) or []) == 5
    assert len(await indexer.search(str(project), question, 2) or []) == 2
    assert len(await indexer.search(str(project), question, 100) or []) == 7


async def test_no_match_is_an_empty_list(indexer: MultiPathIndexer, project: Path) -> None:
    assert await indexer.search(str(project), "kubernetes helm", 5) == []
    assert await indexer.search(str(project), "?!…", 5) == []


async def test_nothing_indexed_is_none(db: Database, home: Path, project: Path) -> None:
    indexer = await make_indexer(db, home)
    assert await indexer.search(str(project), "anything", 5) is None


async def test_search_reindexes_first(indexer: MultiPathIndexer, project: Path) -> None:
    assert names(await indexer.search(str(project), "kubernetes", 5)) == []
    write(project / "notes" / "k8s.md", "We run kubernetes with helm charts.")
    assert names(await indexer.search(str(project), "kubernetes", 5)) == ["k8s.md"]
    (project / "notes" / "k8s.md").unlink()
    assert names(await indexer.search(str(project), "kubernetes", 5)) == []


async def test_chunks_are_found_by_their_own_text(db: Database, home: Path, project: Path) -> None:
    set_project_paths(project, ["notes"])
    filler = "\n".join(f"paragraph {i} about nothing in particular" for i in range(200))
    write(project / "notes" / "long.md", filler + "\nThe wifi password is in the vault.\n" + filler)
    indexer = await make_indexer(db, home, max_chunk_chars=1000)
    results = await indexer.search(str(project), "wifi password", 5)
    assert results is not None and len(results) == 1
    assert results[0].chunk_index > 1
    assert "wifi password" in results[0].content
    assert len(results[0].content) <= 1000


async def test_scopes_project_and_global(db: Database, home: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    write(shared / "team.md", "The team standup is at ten.")
    one, two = tmp_path / "one", tmp_path / "two"
    set_project_paths(one, ["docs"])
    write(one / "docs" / "secret.md", "Project one standup notes.")
    two.mkdir()
    indexer = await make_indexer(db, home, paths=(str(shared),))
    assert sorted(names(await indexer.search(str(one), "standup", 5))) == [
        "secret.md",
        "team.md",
    ]
    # Project two sees the global note but never project one's notes.
    assert names(await indexer.search(str(two), "standup", 5)) == ["team.md"]


async def test_file_in_both_scopes_is_returned_once(
    db: Database, home: Path, project: Path
) -> None:
    note = write(project / "docs" / "a.md", "unique zebra fact")
    # The same file as a project path and as an absolute (global) path.
    set_project_paths(project, ["docs", str(project / "docs")])
    indexer = await make_indexer(db, home)
    # De-duplication keeps the first mention (project scope), so it is stored once.
    results = await indexer.search(str(project), "zebra", 5)
    assert names(results) == ["a.md"]
    indexer2 = await make_indexer(db, home, paths=(str(project / "docs"),))
    results = await indexer2.search(str(project), "zebra", 5)
    assert results is not None
    assert [r.file_path for r in results] == [str(note)]


def test_query_terms_drop_stopwords_and_punctuation() -> None:
    assert query_terms("How do I deploy the *new* version?") == ["deploy", "new", "version"]
    assert query_terms("who is it") == ["who", "is", "it"]  # nothing else: keep them
    assert query_terms('snake_case AND "quotes"') == ["snake", "case", "quotes"]


def test_fts_match_quotes_every_term() -> None:
    assert fts_match('deploy NEAR("x")') == '"deploy" OR "near" OR "x"'
    assert fts_match("...") is None
