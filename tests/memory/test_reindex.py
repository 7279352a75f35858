"""The periodic re-index task (SPEC §10): at start-up, then every interval; errors logged and
never fatal. Runs on the autojump clock: no real waiting."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from loop_server.domain import Channel, Message
from loop_server.memory import channel_work_dirs, reindex_forever
from loop_server.protocols import MemoryIndexer, MemorySearchResult
from loop_server.store import Database
from tests.memory.conftest import make_indexer, set_project_paths, stored_files, write

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class RecordingIndexer:
    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.calls: list[tuple[float, str]] = []
        self.failing = failing

    async def index(self, dir_path: str) -> int:
        self.calls.append((trio.current_time(), dir_path))
        if dir_path in self.failing:
            raise OSError("disk on fire")
        return 1

    async def search(
        self, dir_path: str, query: str, top_k: int
    ) -> list[MemorySearchResult] | None:
        raise AssertionError("not used")


def channel(channel_id: str, dir_path: str = "", parent_id: str = "") -> Channel:
    return Channel(
        id=0,
        channel_id=channel_id,
        guild_id="",
        name=channel_id,
        active=True,
        session_id="",
        dir_path=dir_path,
        parent_id=parent_id,
        platform="local",
        permissions="",
        created_at=T0,
        updated_at=T0,
    )


class Channels:
    def __init__(self, channels: list[Channel]) -> None:
        self.channels = channels

    async def list_channels(self) -> list[Channel]:
        return self.channels

    async def get_channel(self, channel_id: str) -> Channel | None:
        return None

    async def get_messages_cursor(self, channel_id: str, cursor: int, limit: int) -> list[Message]:
        return []

    async def delete_channel(self, channel_id: str) -> None:
        return None


async def test_runs_at_start_and_every_interval(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    indexer = RecordingIndexer()

    async def dirs() -> list[str]:
        return ["/a", "/b"]

    start = trio.current_time()
    await nursery.start(reindex_forever, indexer, dirs, 300.0)
    await trio.sleep(650)
    assert [(round(t - start), d) for t, d in indexer.calls] == [
        (0, "/a"),
        (0, "/b"),
        (300, "/a"),
        (300, "/b"),
        (600, "/a"),
        (600, "/b"),
    ]
    nursery.cancel_scope.cancel()


async def test_errors_are_logged_and_never_fatal(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    indexer = RecordingIndexer(failing=frozenset({"/bad"}))
    listings = 0

    async def dirs() -> list[str]:
        nonlocal listings
        listings += 1
        if listings == 2:
            raise RuntimeError("store is closed")
        return ["/bad", "/good"]

    await nursery.start(reindex_forever, indexer, dirs, 10.0)
    await trio.sleep(25)
    # Pass 1 indexes both (one fails), pass 2 cannot list, pass 3 runs again.
    assert [d for _, d in indexer.calls] == ["/bad", "/good", "/bad", "/good"]
    assert "re-index of /bad failed: disk on fire" in caplog.text
    assert "listing channel dirs failed" in caplog.text
    nursery.cancel_scope.cancel()


async def test_interval_must_be_positive() -> None:
    async def dirs() -> list[str]:
        return []

    with pytest.raises(ValueError):
        await reindex_forever(RecordingIndexer(), dirs, 0)


async def test_channel_work_dirs() -> None:
    channels = Channels(
        [
            channel("c1", "/work/a"),
            channel("c2", "/work/a"),  # same dir: once
            channel("c3"),  # no dir: its work dir under the loop dir
            channel("t1", "/work/a", parent_id="c1"),  # threads work in the parent's dir
            channel("t2", parent_id="c3"),
        ]
    )
    assert await channel_work_dirs(channels, "/data") == ["/work/a", "/data/c3/work"]
    assert await channel_work_dirs(channels, "") == ["/work/a"]


@pytest.fixture
def realtime_clock() -> trio.testing.MockClock:
    """Virtual time that runs at the real rate (so deadlines guard thread work) and that a
    test can jump forward over an interval."""
    return trio.testing.MockClock(rate=1.0)


class SignallingIndexer:
    """Passes calls through and reports each result, so a test waits for a pass to happen."""

    def __init__(self, inner: MemoryIndexer) -> None:
        self.inner = inner
        self.send, self.results = trio.open_memory_channel[int](100)

    async def index(self, dir_path: str) -> int:
        count = await self.inner.index(dir_path)
        self.send.send_nowait(count)
        return count

    async def search(
        self, dir_path: str, query: str, top_k: int
    ) -> list[MemorySearchResult] | None:
        return await self.inner.search(dir_path, query, top_k)


async def test_real_indexer_picks_up_changes(
    nursery: trio.Nursery,
    realtime_clock: trio.testing.MockClock,
    db: Database,
    home: Path,
    project: Path,
) -> None:
    set_project_paths(project, ["docs"])
    write(project / "docs" / "a.md", "alpha")
    indexer = SignallingIndexer(await make_indexer(db, home))
    lister = partial(channel_work_dirs, Channels([channel("c1", str(project))]), "/data")
    await nursery.start(reindex_forever, indexer, lister, 60.0)
    with trio.fail_after(10):
        assert await indexer.results.receive() == 1  # the start-up pass
    write(project / "docs" / "b.md", "beta")
    realtime_clock.jump(60)
    with trio.fail_after(10):
        assert await indexer.results.receive() == 1
    assert sorted(await stored_files(db)) == [
        str(project / "docs" / "a.md"),
        str(project / "docs" / "b.md"),
    ]
    nursery.cancel_scope.cancel()
