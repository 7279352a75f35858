"""Fixtures for the store tests.

Rules for every test here: a real SQLite file in ``tmp_path`` (never ``:memory:``, which has no
WAL and no second connection) or a real PostgreSQL database of its own (``postgres_url``); no
sleeping to wait for a result — concurrency is proven with events and ordering; every wait that
could hang sits under an absolute ``trio.fail_after``; each test asserts concrete values.

``store`` runs each test twice, on SQLite and on PostgreSQL. A test about one engine's nature
(PRAGMAs, WAL, query plans, group commit) is marked ``@pytest.mark.sqlite_only("why")``; its
PostgreSQL run is skipped with that reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from loop_server.store import Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where ``store`` opens: an SQLite file, or a fresh PostgreSQL database's URL.

    A plain (not async) fixture, so that its skips keep their reasons in the summary: a skip
    raised from an async fixture reaches pytest without one.
    """
    if request.param == "sqlite":
        return tmp_path / "loop.db"
    only = request.node.get_closest_marker("sqlite_only")
    if only is not None:
        pytest.skip(f"SQLite only: {only.args[0]}")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(store_target: Path | str) -> AsyncIterator[Store]:
    if isinstance(store_target, Path):
        opened = await Store.open(store_target)
    else:
        opened = await Store.open_postgres(store_target)
    try:
        yield opened
    finally:
        await opened.close()
