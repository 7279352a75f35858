"""``POST /api/memory/search`` and ``POST /api/memory/index`` over real HTTP, with upstream's
exact texts and check order (SPEC §3.14–3.15) and our path validation (SPEC A.2)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from loop_server.api import memory as memory_routes
from loop_server.api.deps import ApiDeps
from loop_server.channel_paths import fallback_work_dir
from loop_server.domain import Channel, ChannelUpsert, Message
from loop_server.memory import MemoryConfig, open_memory_indexer
from loop_server.protocols import MemorySearchResult
from loop_server.runtime import ServerHandle
from tests.memory.conftest import set_project_paths, write

TEXT = "text/plain; charset=utf-8"


@dataclass
class Api:
    client: httpx.AsyncClient
    deps: ApiDeps

    async def search(self, body: object) -> httpx.Response:
        return await self.client.post("/api/memory/search", content=_body(body))

    async def index(self, body: object) -> httpx.Response:
        return await self.client.post("/api/memory/index", content=_body(body))


def _body(body: object) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


@pytest.fixture
async def api(
    server: ServerHandle, client: httpx.AsyncClient, tmp_path: Path
) -> AsyncIterator[Api]:
    """The real server, its memory indexer swapped for one whose home dir is the test's
    (``ApiDeps`` is read at request time), so no real ``~/.claude`` leaks in."""
    deps: ApiDeps = server.services.deps
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    deps.memory = await open_memory_indexer(server.store.db, MemoryConfig(), home=home)
    yield Api(client, deps)


def assert_text(response: httpx.Response, status: int, text: str) -> None:
    assert (response.status_code, response.text) == (status, text + "\n")
    assert response.headers["content-type"] == TEXT


@pytest.fixture
def notes(project: Path) -> Path:
    set_project_paths(project, ["notes"])
    write(project / "notes" / "deploy.md", "Deploy with `make release` <after> review & tests.")
    write(project / "notes" / "db.md", "The database is PostgreSQL.")
    return project


async def test_search_and_index(api: Api, notes: Path) -> None:
    response = await api.index({"dir_path": str(notes)})
    assert response.status_code == 200
    assert response.content == b'{"count":2}\n'
    assert (await api.index({"dir_path": str(notes)})).json() == {"count": 0}
    response = await api.search({"query": "how do I deploy", "dir_path": str(notes)})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    [result] = response.json()["results"]
    assert list(result) == ["file_path", "content", "score", "chunk_index"]
    assert result["file_path"] == str(notes / "notes" / "deploy.md")
    assert result["content"] == "Deploy with `make release` <after> review & tests."
    assert isinstance(result["score"], float) and result["score"] > 0
    assert result["chunk_index"] == 0
    # Go's encoder escapes <, > and & in strings.
    assert b"\\u003cafter\\u003e review \\u0026 tests" in response.content


async def test_top_k(api: Api, project: Path) -> None:
    set_project_paths(project, ["notes"])
    for i in range(8):
        write(project / "notes" / f"n{i}.md", f"shared word, note {i}")
    base = {"query": "shared word", "dir_path": str(project)}
    assert len((await api.search(base)).json()["results"]) == 5
    assert len((await api.search({**base, "top_k": 0})).json()["results"]) == 5
    assert len((await api.search({**base, "top_k": -1})).json()["results"]) == 5
    assert len((await api.search({**base, "top_k": 3})).json()["results"]) == 3


async def test_nothing_indexed_is_null(api: Api, project: Path) -> None:
    response = await api.search({"query": "anything", "dir_path": str(project)})
    assert response.status_code == 200
    assert response.content == b'{"results":null}\n'


async def test_no_match_is_null_too(api: Api, notes: Path) -> None:
    """One shape for "no results" (docs/decisions.md): upstream's is always null."""
    response = await api.search({"query": "kubernetes", "dir_path": str(notes)})
    assert response.content == b'{"results":null}\n'


async def test_not_configured_is_501_before_the_body(api: Api) -> None:
    api.deps.memory = None
    for call in (api.search, api.index):
        assert_text(await call(b"not json"), 501, "memory indexer not configured")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'"x"',
        b'{"query": 5}',
        b'{"query": "q", "top_k": "5"}',
        b'{"query": "q", "top_k": 1.5}',
        b'{"query": "q", "dir_path": 7}',
    ],
)
async def test_undecodable_body(api: Api, body: bytes) -> None:
    assert_text(await api.search(body), 400, "invalid request body")


@pytest.mark.parametrize("body", [b"{", b'{"dir_path": []}', b'{"channel_id": 1}'])
async def test_undecodable_index_body(api: Api, body: bytes) -> None:
    assert_text(await api.index(body), 400, "invalid request body")


async def test_query_is_required_before_the_directory(api: Api) -> None:
    for body in ({}, {"query": ""}, {"query": None, "dir_path": "relative"}):
        assert_text(await api.search(body), 400, "query is required")


async def test_dir_or_channel_required(api: Api) -> None:
    assert_text(await api.search({"query": "q"}), 400, "dir_path or channel_id is required")
    assert_text(await api.index({}), 400, "dir_path or channel_id is required")
    assert_text(
        await api.index({"dir_path": "", "channel_id": ""}),
        400,
        "dir_path or channel_id is required",
    )


async def test_caller_dir_must_be_absolute_and_nul_free(api: Api) -> None:
    for call, extra in ((api.search, {"query": "q"}), (api.index, {})):
        assert_text(
            await call({**extra, "dir_path": "proj/notes"}),
            400,
            "dir_path must be an absolute path",
        )
        assert_text(
            await call({**extra, "dir_path": "/tmp/a\x00b"}),
            400,
            "dir_path must not contain NUL bytes",
        )


async def test_unknown_channel(api: Api) -> None:
    assert_text(
        await api.search({"query": "q", "channel_id": "nope"}), 400, "channel nope not found"
    )
    assert_text(await api.index({"channel_id": "nope"}), 400, "channel nope not found")


async def test_channel_dir_is_used(api: Api, notes: Path) -> None:
    created = await api.client.post("/api/channels", json={"dir_path": str(notes)})
    channel_id = created.json()["channel_id"]
    assert (await api.index({"channel_id": channel_id})).json() == {"count": 2}
    response = await api.search({"query": "postgresql", "channel_id": channel_id})
    assert [r["file_path"] for r in response.json()["results"]] == [str(notes / "notes" / "db.md")]
    # dir_path wins over channel_id.
    other = notes.parent / "other"
    other.mkdir()
    response = await api.search(
        {"query": "postgresql", "channel_id": channel_id, "dir_path": str(other)}
    )
    assert response.json() == {"results": None}


async def test_channel_without_dir_uses_the_loop_dir(api: Api, server: ServerHandle) -> None:
    created = await api.client.post("/api/channels/create", json={"name": "general"})
    channel_id = created.json()["channel_id"]
    work = server.config.data_dir / channel_id / "work"
    set_project_paths(work, ["notes"])
    write(work / "notes" / "a.md", "loop dir note")
    assert (await api.index({"channel_id": channel_id})).json() == {"count": 1}
    response = await api.search({"query": "note", "channel_id": channel_id})
    assert response.json()["results"][0]["file_path"] == str(work / "notes" / "a.md")
    api.deps.loop_dir = ""
    assert_text(
        await api.index({"channel_id": channel_id}), 400, f"channel {channel_id} has no dir_path"
    )


async def test_loop_dir_fallback_stays_in_the_loop_dir(api: Api, server: ServerHandle) -> None:
    # Channel ids come from callers (a message to an unknown id creates it). One that starts
    # with "/" must still work under the loop dir, as the listing and agent runs have it; a
    # path join used to drop the loop dir and look at "/odd-id/work".
    row = ChannelUpsert(channel_id="/odd-id", name="odd", platform="local", active=True)
    await server.store.channels.upsert(row, datetime.now(UTC))
    work = Path(fallback_work_dir(str(server.config.data_dir), "/odd-id"))
    assert work.parent.parent == server.config.data_dir  # (a digest stands for the odd id)
    set_project_paths(work, ["notes"])
    write(work / "notes" / "a.md", "odd channel note")
    listed = (await api.client.get("/api/channels")).json()
    assert Path(listed[0]["dir_path"]) == work
    assert (await api.index({"channel_id": "/odd-id"})).json() == {"count": 1}
    response = await api.search({"query": "odd note", "channel_id": "/odd-id"})
    assert Path(response.json()["results"][0]["file_path"]) == work / "notes" / "a.md"


class BrokenLister:
    async def list_channels(self) -> list[Channel]:
        raise RuntimeError("database is locked")

    async def get_channel(self, channel_id: str) -> Channel | None:
        raise RuntimeError("database is locked")

    async def get_messages_cursor(self, channel_id: str, cursor: int, limit: int) -> list[Message]:
        return []

    async def delete_channel(self, channel_id: str) -> None:
        return None


async def test_channel_lookup_errors(api: Api) -> None:
    api.deps.store = BrokenLister()
    assert_text(
        await api.search({"query": "q", "channel_id": "c"}),
        400,
        "looking up channel: database is locked",
    )
    api.deps.store = None
    assert_text(await api.index({"channel_id": "c"}), 400, "channel lookup not configured")
    # A dir_path needs no lookup at all.
    assert (await api.index({"dir_path": "/nonexistent/project"})).json() == {"count": 0}


class FailingIndexer:
    async def search(
        self, dir_path: str, query: str, top_k: int
    ) -> list[MemorySearchResult] | None:
        raise RuntimeError("loading files: disk I/O error")

    async def index(self, dir_path: str) -> int:
        raise RuntimeError("walking memory dir: permission denied")


async def test_indexer_errors_are_500_with_the_text(api: Api) -> None:
    api.deps.memory = FailingIndexer()
    assert_text(
        await api.search({"query": "q", "dir_path": "/p"}), 500, "loading files: disk I/O error"
    )
    assert_text(await api.index({"dir_path": "/p"}), 500, "walking memory dir: permission denied")


def test_empty_content_is_omitted() -> None:
    result = MemorySearchResult(file_path="/a.md", content="", score=0.5, chunk_index=0)
    assert memory_routes.result_json(result) == {
        "file_path": "/a.md",
        "score": 0.5,
        "chunk_index": 0,
    }


async def test_a_channels_memory_dir_is_searched_without_configuration(
    api: Api, project: Path
) -> None:
    """A new user's first search: notes in ``<work dir>/memory/`` are found with no config
    file, no ``memory.paths`` and no explicit index call; notes written after that search are
    found by the next one."""
    created = await api.client.post("/api/channels", json={"dir_path": str(project)})
    channel_id = created.json()["channel_id"]
    assert (await api.search({"query": "rollout", "channel_id": channel_id})).json() == {
        "results": None
    }
    write(project / "memory" / "deploy.md", "# Deploys\nUse blue-green rollouts on Fridays.")
    write(project / "README.md", "rollout notes outside memory/ are not indexed")
    response = await api.search({"query": "rollout", "channel_id": channel_id})
    assert [r["file_path"] for r in response.json()["results"]] == [
        str(project / "memory" / "deploy.md")
    ]
    write(project / "memory" / "nested" / "db.md", "The database is PostgreSQL.")
    response = await api.search({"query": "postgresql", "channel_id": channel_id})
    assert [r["file_path"] for r in response.json()["results"]] == [
        str(project / "memory" / "nested" / "db.md")
    ]


async def test_a_channel_without_dir_searches_its_loop_dir_memory(
    api: Api, server: ServerHandle
) -> None:
    created = await api.client.post("/api/channels/create", json={"name": "general"})
    channel_id = created.json()["channel_id"]
    work = server.config.data_dir / channel_id / "work"
    write(work / "memory" / "standup.md", "Standup is at nine.")
    response = await api.search({"query": "standup", "channel_id": channel_id})
    assert [r["file_path"] for r in response.json()["results"]] == [
        str(work / "memory" / "standup.md")
    ]


async def test_the_memory_dir_can_be_excluded(api: Api, project: Path) -> None:
    set_project_paths(project, ["!memory"])
    write(project / "memory" / "private.md", "nothing to see here")
    assert (await api.index({"dir_path": str(project)})).json() == {"count": 0}
    response = await api.search({"query": "nothing", "dir_path": str(project)})
    assert response.json() == {"results": None}
