"""Fixtures for the store tests.

Rules for every test here: a real SQLite file in ``tmp_path`` (never ``:memory:``, which has no
WAL and no second connection); no sleeping to wait for a result — concurrency is proven with
events and ordering; every wait that could hang sits under an absolute ``trio.fail_after``;
each test asserts concrete values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from loop_server.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "loop.db")
    try:
        yield opened
    finally:
        await opened.close()
