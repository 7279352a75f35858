"""Fixtures for the memory tests.

Rules every test here follows: real files in ``tmp_path`` (a fake home dir included, so the
auto-memory dir is never the user's), a real SQLite file, real HTTP on 127.0.0.1 with port 0
(the fake Ollama too; nothing else is contacted). Every wait that could hang has a
``trio.fail_after`` deadline; timing-dependent tests run on ``autojump_clock`` and never sleep
for real.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from loop_server.memory import MemoryConfig, MultiPathIndexer, open_memory_indexer
from loop_server.store import Database
from tests.memory._fake_ollama import FakeOllama


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with await Database.open(tmp_path / "loop.db") as database:
        yield database


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "proj"
    path.mkdir()
    return path


@pytest.fixture
async def fake_ollama(nursery: trio.Nursery) -> FakeOllama:
    server = FakeOllama()
    await nursery.start(server.serve)
    return server


async def make_indexer(db: Database, home: Path, **config: Any) -> MultiPathIndexer:
    return await open_memory_indexer(db, MemoryConfig(**config), home=home)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def set_project_paths(project: Path, paths: list[str]) -> None:
    """Write ``<project>/.loop/config.json`` as HuJSON (a comment and a trailing comma)."""
    entries = "".join(f"      {json.dumps(p)},\n" for p in paths)
    write(
        project / ".loop" / "config.json",
        '{\n  // memory for this project\n  "memory": {\n    "paths": [\n'
        + entries
        + "    ],\n  },\n}\n",
    )


def auto_memory(home: Path, project: Path) -> Path:
    return home / ".claude" / "projects" / str(project).replace("/", "-") / "memory"


async def stored_rows(db: Database) -> list[tuple[str, int, str, str, bool]]:
    """(file_path, chunk_index, dir_path, content, has a hash) of every memory row, sorted."""

    def query(conn: sqlite3.Connection) -> list[tuple[str, int, str, str, bool]]:
        return [
            (path, index, scope, content, bool(digest))
            for path, index, scope, content, digest in conn.execute(
                "SELECT file_path, chunk_index, dir_path, content, content_hash FROM memory_files"
                " ORDER BY file_path, chunk_index, dir_path"
            )
        ]

    return await db.read(query)


async def stored_files(db: Database) -> dict[str, str]:
    """file_path → dir_path of every header row."""
    return {path: scope for path, index, scope, _, _ in await stored_rows(db) if index == 0}
