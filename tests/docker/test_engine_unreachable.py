"""With no engine behind the socket: the connect is tried at most once a second, callers in
between get the same error at once, and the channel listing's running set is empty (no
engine needed: the socket path does not exist)."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest
import trio
import trio.testing

from loop_server.containers import EngineError
from loop_server.containers._engine import RECONNECT_AFTER_SEC, DockerEngine
from loop_server.containers._running import RunningChannels


class CountingEngine(DockerEngine):
    """Counts the real connect attempts (each one a worker thread and a refused socket)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url=base_url, timeout=2)
        self.attempts = 0

    def _open_client(self) -> docker.DockerClient:
        self.attempts += 1
        return super()._open_client()


@pytest.fixture
def engine(tmp_path: Path) -> CountingEngine:
    return CountingEngine(f"unix://{tmp_path / 'no-engine.sock'}")


async def test_a_failed_connect_is_not_retried_for_a_second(
    engine: CountingEngine, autojump_clock: trio.testing.MockClock
) -> None:
    with pytest.raises(EngineError, match="not reachable") as first:
        await engine.client()
    for _ in range(50):
        with pytest.raises(EngineError) as again:
            await engine.client()
        assert str(again.value) == str(first.value)
    assert engine.attempts == 1
    await trio.sleep(RECONNECT_AFTER_SEC)
    with pytest.raises(EngineError, match="not reachable"):
        await engine.client()
    assert engine.attempts == 2


async def test_concurrent_callers_share_one_failed_connect(engine: CountingEngine) -> None:
    failures: list[str] = []

    async def ask() -> None:
        try:
            await engine.client()
        except EngineError as err:
            failures.append(str(err))

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(ask)
    assert len(failures) == 10 and len(set(failures)) == 1
    assert engine.attempts == 1


async def test_with_no_engine_no_channel_is_running(engine: CountingEngine) -> None:
    running = RunningChannels(engine)
    for _ in range(20):
        assert await running.running_channel_ids() == set()
    assert engine.attempts == 1
    assert not running.statistics().live
