"""The Ollama provider against a real HTTP server speaking its embed API on 127.0.0.1:0, its
failure modes, and what the index does with them: lexical results are always served."""

from __future__ import annotations

import logging
import socket
import sqlite3
import struct
from pathlib import Path

import pytest
import trio

from loop_server.memory import (
    EmbeddingError,
    EmbeddingsConfig,
    GuardedEmbedder,
    MultiPathIndexer,
    OllamaEmbedder,
)
from loop_server.memory._ranking import RRF_K
from loop_server.store import Database
from tests.memory._fake_ollama import FakeOllama, Mode, embed_text
from tests.memory.conftest import make_indexer, set_project_paths, write

DIMS = 64


def ollama(url: str, *, timeout: float = 5.0, dims: int = DIMS) -> OllamaEmbedder:
    return OllamaEmbedder(url=url, model="nomic-embed-text", dimensions=dims, timeout=timeout)


def refused_url() -> str:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def hybrid_indexer(
    db: Database, home: Path, url: str, *, retry_after: float = 60.0
) -> MultiPathIndexer:
    embeddings = EmbeddingsConfig(
        ollama_url=url, dimensions=DIMS, timeout_sec=5.0, retry_after_sec=retry_after
    )
    return await make_indexer(db, home, embeddings=embeddings)


async def test_embed_protocol(fake_ollama: FakeOllama) -> None:
    with trio.fail_after(10):
        vectors = await ollama(fake_ollama.url).embed(["red car", "blue truck"])
    assert vectors == [embed_text("red car", DIMS), embed_text("blue truck", DIMS)]
    assert fake_ollama.paths == ["/api/embed"]
    assert fake_ollama.requests == [
        {"model": "nomic-embed-text", "input": ["red car", "blue truck"]}
    ]
    assert fake_ollama.headers[0]["content-type"] == "application/json"
    assert fake_ollama.headers[0]["host"] == f"127.0.0.1:{fake_ollama.port}"


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("error", 'status 500: model "nomic-embed-text" not found'),
        ("not-json", "ollama decode response: "),
        ("wrong-dims", "returned 3-dimensional embeddings, expected 64"),
        ("too-few", "expected 2 embeddings, got 1"),
        ("nan", "an embedding is not a list of numbers"),
        ("close-early", "peer closed connection without sending complete message body"),
    ],
)
async def test_bad_answers_are_clear_errors(
    fake_ollama: FakeOllama, mode: Mode, message: str
) -> None:
    fake_ollama.mode = mode
    with trio.fail_after(10), pytest.raises(EmbeddingError, match=message) as caught:
        await ollama(fake_ollama.url).embed(["a", "b"])
    assert str(caught.value).startswith(("ollama embed", "ollama decode response"))


async def test_connection_refused() -> None:
    url = refused_url()
    with trio.fail_after(10), pytest.raises(EmbeddingError) as caught:
        await ollama(url).embed(["a"])
    assert str(caught.value) == (
        f"ollama embed request to {url}/api/embed: cannot connect to "
        f"127.0.0.1:{url.rsplit(':', 1)[1]}: connection refused"
    )


async def test_timeout(fake_ollama: FakeOllama, autojump_clock: trio.testing.MockClock) -> None:
    fake_ollama.mode = "hang"
    started = trio.current_time()
    with pytest.raises(EmbeddingError, match=r"no answer within 2\.5 s"):
        await ollama(fake_ollama.url, timeout=2.5).embed(["a"])
    assert trio.current_time() - started == pytest.approx(2.5)


async def test_guard_backs_off_after_a_failure(
    fake_ollama: FakeOllama,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    guard = GuardedEmbedder(ollama(fake_ollama.url), retry_after=30)
    fake_ollama.mode = "error"
    assert await guard.embed(["a"]) is None
    assert "embeddings unavailable" in caplog.text and "next attempt in 30 s" in caplog.text
    fake_ollama.mode = "ok"
    assert await guard.embed(["a"]) is None  # still backing off: no request sent
    assert len(fake_ollama.requests) == 1
    await trio.sleep(30)
    assert await guard.embed(["a"]) == [embed_text("a", DIMS)]
    assert guard.statistics().failures == 1
    assert guard.statistics().requests == 2


async def test_guard_batches_requests(fake_ollama: FakeOllama) -> None:
    guard = GuardedEmbedder(ollama(fake_ollama.url), retry_after=30)
    texts = [f"text {i}" for i in range(40)]
    with trio.fail_after(10):
        assert await guard.embed(texts) == [embed_text(t, DIMS) for t in texts]
    assert [len(r["input"]) for r in fake_ollama.requests] == [16, 16, 8]


async def test_vectors_are_stored_as_float32_blobs(
    db: Database, home: Path, project: Path, fake_ollama: FakeOllama
) -> None:
    set_project_paths(project, ["docs"])
    write(project / "docs" / "car.md", "my car is red")
    indexer = await hybrid_indexer(db, home, fake_ollama.url)
    with trio.fail_after(10):
        assert await indexer.index(str(project)) == 1

    def rows(conn: sqlite3.Connection) -> list[tuple[bytes, int]]:
        return list(conn.execute("SELECT embedding, dimensions FROM memory_files"))

    [(blob, dims)] = await db.read(rows)
    assert dims == DIMS
    assert list(struct.unpack(f"<{DIMS}f", blob)) == embed_text("my car is red", DIMS)


async def test_hybrid_search_finds_meaning_lexical_misses(
    db: Database, home: Path, project: Path, fake_ollama: FakeOllama
) -> None:
    set_project_paths(project, ["docs"])
    write(project / "docs" / "garage.md", "The automobile is parked in the garage.")
    write(project / "docs" / "kitchen.md", "The kettle is in the kitchen.")
    lexical = await make_indexer(db, home)
    assert await lexical.search(str(project), "where is my car", 5) == []
    indexer = await hybrid_indexer(db, home, fake_ollama.url)
    with trio.fail_after(10):
        results = await indexer.search(str(project), "where is my car", 5)
        await indexer.index(str(project))  # backfill the vectors the lexical pass left out
        results = await indexer.search(str(project), "where is my car", 5)
    assert results is not None
    assert Path(results[0].file_path).name == "garage.md"
    # Reciprocal rank fusion: first in the vector ranking only → 1 / (60 + 1).
    assert results[0].score == pytest.approx(1 / (RRF_K + 1), rel=1e-6)


async def test_failing_ollama_still_indexes_and_serves_lexically(
    db: Database,
    home: Path,
    project: Path,
    fake_ollama: FakeOllama,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    set_project_paths(project, ["docs"])
    write(project / "docs" / "deploy.md", "Deploy with make release.")
    write(project / "docs" / "other.md", "Something else entirely.")
    fake_ollama.mode = "wrong-dims"
    indexer = await hybrid_indexer(db, home, fake_ollama.url)
    with trio.fail_after(10):
        assert await indexer.index(str(project)) == 2
        results = await indexer.search(str(project), "how to deploy", 5)
    assert results is not None
    assert [Path(r.file_path).name for r in results] == ["deploy.md"]
    assert results[0].score > 0 and results[0].score != pytest.approx(1 / (RRF_K + 1))
    assert "returned 3-dimensional embeddings, expected 64" in caplog.text
    # One failure, then the back-off: the search did not try again.
    assert len(fake_ollama.requests) == 1


async def test_unreachable_ollama_is_lexical(
    db: Database, home: Path, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    set_project_paths(project, ["docs"])
    write(project / "docs" / "deploy.md", "Deploy with make release.")
    indexer = await hybrid_indexer(db, home, refused_url())
    with trio.fail_after(10):
        results = await indexer.search(str(project), "deploy", 5)
    assert results is not None and len(results) == 1
    assert "connection refused" in caplog.text


async def test_vectors_are_backfilled_when_ollama_returns(
    db: Database,
    home: Path,
    project: Path,
    fake_ollama: FakeOllama,
    autojump_clock: trio.testing.MockClock,
) -> None:
    set_project_paths(project, ["docs"])
    for i in range(3):
        write(project / "docs" / f"n{i}.md", f"note number {i}")
    fake_ollama.mode = "error"
    indexer = await hybrid_indexer(db, home, fake_ollama.url, retry_after=10)
    assert await indexer.index(str(project)) == 3
    fake_ollama.mode = "ok"
    await trio.sleep(10)
    stats = await indexer.index_with_stats(str(project))
    assert (stats.indexed, stats.embedded) == (0, 3)

    def dims(conn: sqlite3.Connection) -> list[int]:
        return [r[0] for r in conn.execute("SELECT dimensions FROM memory_files")]

    assert await db.read(dims) == [DIMS] * 3
