"""``open_store`` picks the engine from ``database_url``, and the server uses it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import httpx
import psycopg
import pytest
import trio

from loop_server.runtime import ServerHandle, StartupError, run_server
from loop_server.store import Database, PostgresDatabase, Store, open_store, store_location
from tests.conftest import create_channel, make_config

from .helpers import add_channel


async def test_sqlite_without_a_url(tmp_path: Path) -> None:
    async with await open_store(database_url="", path=tmp_path / "loop.db") as store:
        assert isinstance(store.db, Database)
        assert store.db.dialect == "sqlite"
        assert store.channels.generation is not None  # one writer: listings may be kept
    assert (tmp_path / "loop.db").exists()


async def test_postgres_with_a_url(postgres_url: str, tmp_path: Path) -> None:
    async with await open_store(database_url=postgres_url, path=tmp_path / "loop.db") as store:
        assert isinstance(store.db, PostgresDatabase)
        assert store.db.dialect == "postgres"
        assert store.channels.generation is None  # other instances write: nothing kept
    assert not (tmp_path / "loop.db").exists()


def test_store_location_hides_the_password(tmp_path: Path) -> None:
    assert store_location(database_url="", path=tmp_path / "loop.db") == str(tmp_path / "loop.db")
    assert (
        store_location(database_url="postgresql://u:pw@db:5432/loop", path=tmp_path)
        == "postgresql://u@db:5432/loop"
    )


async def test_server_keeps_its_state_in_postgres(postgres_url: str, tmp_path: Path) -> None:
    config = replace(make_config(tmp_path), database_url=postgres_url)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(20):
            handle: ServerHandle = await nursery.start(partial(run_server, config))
        try:
            assert isinstance(handle.store.db, PostgresDatabase)
            async with httpx.AsyncClient(base_url=handle.url, timeout=10) as client:
                channel_id = await create_channel(client, "from-the-api")
                first = (await client.get("/api/channels")).json()
                # Another instance's write shows in the very next listing: nothing is kept.
                async with await Store.open_postgres(postgres_url) as other:
                    await add_channel(other, "elsewhere", name="elsewhere", platform="local")
                second = (await client.get("/api/channels")).json()
                # Memory indexes this instance's files into a SQLite file of its own.
                notes = tmp_path / "project"
                (notes / "memory").mkdir(parents=True)
                (notes / "memory" / "deploy.md").write_text(
                    "# Deploying\n\nRun make deploy on Fridays.\n"
                )
                indexed = await client.post("/api/memory/index", json={"dir_path": str(notes)})
                found = await client.post(
                    "/api/memory/search", json={"query": "deploy fridays", "dir_path": str(notes)}
                )
        finally:
            handle.shutdown()
    assert [c["channel_id"] for c in first] == [channel_id]
    assert [c["channel_id"] for c in second] == ["elsewhere", channel_id]
    assert not config.db_path.exists()
    assert (indexed.status_code, found.status_code) == (200, 200), (indexed.text, found.text)
    assert indexed.json()["count"] >= 1
    assert [r["file_path"].endswith("deploy.md") for r in found.json()["results"]] == [True]
    assert (config.data_dir / "memory.db").exists()
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT name FROM channels WHERE channel_id = %s", (channel_id,))
        assert row.fetchone() == ("from-the-api",)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections (bound, not listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


async def test_server_start_names_the_url_without_its_password(
    tmp_path: Path, closed_port: int
) -> None:
    url = f"postgresql://loop:s3cret@127.0.0.1:{closed_port}/loop"
    config = replace(make_config(tmp_path), database_url=url)
    with pytest.raises(StartupError) as info, trio.fail_after(20):
        await run_server(config)
    message = str(info.value)
    assert message.startswith(f"opening database postgresql://loop@127.0.0.1:{closed_port}/loop: ")
    assert "s3cret" not in message
