"""Channel routes over real HTTP: SPEC §3.1–3.3 and §3.17."""

from __future__ import annotations

import re
import shutil
from pathlib import Path, PurePosixPath

import httpx
import pytest
import trio

from loop_server.runtime import ServerHandle
from tests.conftest import add_channels, agents_idle


async def test_listing_starts_empty(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/channels")
    assert response.status_code == 200
    assert response.content == b"[]\n"


async def test_ensure_channel_is_idempotent_per_dir(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    project = tmp_path / "my-project"
    first = await client.post("/api/channels", json={"dir_path": str(project)})
    second = await client.post("/api/channels", json={"dir_path": str(project)})
    assert first.status_code == 200
    channel_id = first.json()["channel_id"]
    assert re.fullmatch(r"[0-9a-f]{24}", channel_id)
    assert second.json() == {"channel_id": channel_id}
    listing = (await client.get("/api/channels")).json()
    assert len(listing) == 1
    item = listing[0]
    assert re.fullmatch(r"my-project-[0-9a-f]{4}", item["name"])
    assert item == {
        "channel_id": channel_id,
        "name": item["name"],
        "dir_path": str(project),
        "parent_id": "",
        "active": True,
        "container_running": False,
        "agent_running": False,
    }


async def test_concurrent_ensure_returns_one_channel(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    ids: list[str] = []

    async def ensure() -> None:
        response = await client.post("/api/channels", json={"dir_path": str(tmp_path / "p")})
        assert response.status_code == 200
        ids.append(response.json()["channel_id"])

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(ensure)
    assert len(set(ids)) == 1
    assert len((await client.get("/api/channels")).json()) == 1


@pytest.mark.parametrize("body", [{}, {"dir_path": ""}, {"dir_path": None}])
async def test_ensure_requires_dir_path(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await client.post("/api/channels", json=body)
    assert response.status_code == 400
    assert response.text == "dir_path is required\n"


async def test_create_named_channel_uses_loop_dir_fallback(
    client: httpx.AsyncClient, server: ServerHandle
) -> None:
    response = await client.post("/api/channels/create", json={"name": "General", "author_id": "u"})
    assert response.status_code == 201
    channel_id = response.json()["channel_id"]
    listing = (await client.get("/api/channels")).json()
    assert listing[0]["name"] == "General"
    assert listing[0]["dir_path"] == f"{server.config.data_dir}/{channel_id}/work"


async def test_a_thread_without_a_dir_lists_its_parents_work_dir(
    client: httpx.AsyncClient, server: ServerHandle
) -> None:
    """The dir its agents and shells really use (docs/decisions.md: threads share their
    parent's work dir), not an empty <loop>/<thread_id>/work."""
    created = await client.post("/api/channels/create", json={"name": "General"})
    parent = created.json()["channel_id"]
    thread = await client.post("/api/threads", json={"channel_id": parent, "name": "side"})
    assert thread.status_code == 201, thread.text
    thread_id = thread.json()["thread_id"]
    listing = {c["channel_id"]: c for c in (await client.get("/api/channels")).json()}
    parent_work = f"{server.config.data_dir}/{parent}/work"
    assert listing[parent]["dir_path"] == parent_work
    assert listing[thread_id]["dir_path"] == parent_work
    assert listing[thread_id]["parent_id"] == parent


async def test_create_requires_name(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/channels/create", json={"author_id": "u"})
    assert response.status_code == 400
    assert response.text == "name is required\n"
    bad = await client.post("/api/channels/create", json={"name": 3})
    assert bad.status_code == 400
    assert bad.text == "invalid request body\n"


async def test_listing_sorted_by_name_and_filtered_by_query(client: httpx.AsyncClient) -> None:
    for name in ("zeta", "Alpha", "beta-ALP"):
        await client.post("/api/channels/create", json={"name": name})
    names = [c["name"] for c in (await client.get("/api/channels")).json()]
    assert names == ["Alpha", "beta-ALP", "zeta"]  # SQLite's byte order, as upstream
    found = (await client.get("/api/channels", params={"query": "alp"})).json()
    assert [c["name"] for c in found] == ["Alpha", "beta-ALP"]
    none = (await client.get("/api/channels", params={"query": "nomatch"})).json()
    assert none == []


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
async def test_listing_shows_git_branch(client: httpx.AsyncClient, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    await trio.run_process(["git", "init", "-q", "-b", "feature-x", str(repo)])
    await trio.run_process(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.email=t@t",
            "-c",
            "user.name=t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "init",
        ],
    )
    await client.post("/api/channels", json={"dir_path": str(repo)})
    await client.post("/api/channels", json={"dir_path": str(tmp_path / "plain")})
    listing = {c["dir_path"]: c for c in (await client.get("/api/channels")).json()}
    assert listing[str(repo)]["branch"] == "feature-x"
    assert "branch" not in listing[str(tmp_path / "plain")]


async def test_delete_channel_removes_threads_and_messages(
    client: httpx.AsyncClient, server: ServerHandle
) -> None:
    channel_id = (await client.post("/api/channels/create", json={"name": "c"})).json()[
        "channel_id"
    ]
    thread = await client.post(
        "/api/threads", json={"channel_id": channel_id, "name": "t", "message": "in thread"}
    )
    thread_id = thread.json()["thread_id"]
    await client.post("/api/messages", json={"channel_id": channel_id, "content": "hello"})
    await agents_idle(server)
    response = await client.delete(f"/api/channels/{channel_id}")
    assert response.status_code == 204
    assert (await client.get("/api/channels")).json() == []
    for cid in (channel_id, thread_id):
        history = (await client.get(f"/api/channels/{cid}/messages")).json()
        assert history["messages"] == []
    again = await client.delete(f"/api/channels/{channel_id}")
    assert again.status_code == 404
    assert again.text == "channel not found\n"


@pytest.mark.parametrize("dir_path", ["relative/dir", "./x", "~/x", "/tmp/nul\u0000byte"])
async def test_ensure_requires_an_absolute_dir(client: httpx.AsyncClient, dir_path: str) -> None:
    response = await client.post("/api/channels", json={"dir_path": dir_path})
    assert response.status_code == 400
    assert response.text == "dir_path must be an absolute path\n"
    assert (await client.get("/api/channels")).json() == []


async def test_a_channel_id_that_is_a_path_stays_in_the_loop_dir(
    client: httpx.AsyncClient, server: ServerHandle
) -> None:
    """Ids can be anyone's (another platform's, an old database's): `../..` must not move the
    work dir that agents get mounted read-write out of the data dir."""
    channel_id = "../../../tmp/escaped"
    await add_channels(server, channel_id)
    posted = await client.post("/api/messages", json={"channel_id": channel_id, "content": "hi"})
    assert posted.status_code == 204
    await agents_idle(server)
    [listed] = [
        c for c in (await client.get("/api/channels")).json() if c["channel_id"] == channel_id
    ]
    work = PurePosixPath(listed["dir_path"])
    assert ".." not in work.parts
    assert work.parent.parent == PurePosixPath(server.config.data_dir)
    assert work.parent.name.startswith("id-")
    # The agent run (or its clear error without an engine) did not create the path the id spells.
    assert not await trio.Path("/tmp/escaped").exists()
