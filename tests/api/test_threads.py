"""Thread routes over real HTTP: SPEC §3.6–3.7, §9.2."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from loop_server.runtime import ServerHandle
from tests.conftest import agents_idle, user_messages


async def _channel(client: httpx.AsyncClient, dir_path: Path) -> str:
    response = await client.post("/api/channels", json={"dir_path": str(dir_path)})
    return str(response.json()["channel_id"])


async def test_thread_inherits_parent(client: httpx.AsyncClient, tmp_path: Path) -> None:
    parent = await _channel(client, tmp_path / "proj")
    response = await client.post("/api/threads", json={"channel_id": parent, "name": "fix bug"})
    assert response.status_code == 201
    thread_id = response.json()["thread_id"]
    assert re.fullmatch(r"[0-9a-f]{12}", thread_id)
    listing = {c["channel_id"]: c for c in (await client.get("/api/channels")).json()}
    assert listing[thread_id]["parent_id"] == parent
    assert listing[thread_id]["name"] == "fix bug"
    assert listing[thread_id]["dir_path"] == str(tmp_path / "proj")


async def test_thread_of_thread_attaches_to_top_level(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    parent = await _channel(client, tmp_path / "proj")
    first = (await client.post("/api/threads", json={"channel_id": parent, "name": "a"})).json()
    nested = await client.post("/api/threads", json={"channel_id": first["thread_id"], "name": "b"})
    listing = {c["channel_id"]: c for c in (await client.get("/api/channels")).json()}
    assert listing[nested.json()["thread_id"]]["parent_id"] == parent


async def test_thread_message_is_stored_as_the_users(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    parent = await _channel(client, tmp_path / "proj")
    response = await client.post(
        "/api/threads",
        json={"channel_id": parent, "name": "t", "message": "please look", "author_id": "alice"},
    )
    thread_id = response.json()["thread_id"]
    [message] = user_messages((await client.get(f"/api/channels/{thread_id}/messages")).json())
    assert message["content"] == "please look"
    assert message["author_id"] == "alice"
    assert message["is_bot"] is False
    default = await client.post(
        "/api/threads", json={"channel_id": parent, "name": "u", "message": "hi"}
    )
    history = (await client.get(f"/api/channels/{default.json()['thread_id']}/messages")).json()
    assert user_messages(history)[0]["author_id"] == "local-user"


async def test_unknown_parent_is_404(client: httpx.AsyncClient) -> None:
    # Upstream answers 500 with this text; a missing parent is the caller's 404 (decisions.md).
    response = await client.post("/api/threads", json={"channel_id": "ghost", "name": "t"})
    assert response.status_code == 404
    assert response.text == "parent channel ghost not found\n"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"name": "t"}, "channel_id is required"),
        ({"channel_id": "c"}, "name is required"),
        ({"channel_id": "c", "name": 1}, "invalid request body"),
    ],
)
async def test_create_validation(
    client: httpx.AsyncClient, body: dict[str, object], text: str
) -> None:
    response = await client.post("/api/threads", json=body)
    assert response.status_code == 400
    assert response.text == text + "\n"


async def test_delete_thread(
    client: httpx.AsyncClient, server: ServerHandle, tmp_path: Path
) -> None:
    project = tmp_path / "proj"
    parent = await _channel(client, project)
    thread_id = (
        await client.post("/api/threads", json={"channel_id": parent, "name": "t", "message": "m"})
    ).json()["thread_id"]
    mcp = project / ".loop" / f"mcp-{thread_id}.json"
    mcp.parent.mkdir(parents=True)
    mcp.write_text("{}")
    await agents_idle(server)
    response = await client.delete(f"/api/threads/{thread_id}")
    assert response.status_code == 204
    assert not mcp.exists()
    ids = [c["channel_id"] for c in (await client.get("/api/channels")).json()]
    assert ids == [parent]
    history = (await client.get(f"/api/channels/{thread_id}/messages")).json()
    assert history["messages"] == []


async def test_delete_errors_are_client_errors(client: httpx.AsyncClient, tmp_path: Path) -> None:
    parent = await _channel(client, tmp_path / "proj")
    unknown = await client.delete("/api/threads/nope")
    not_thread = await client.delete(f"/api/threads/{parent}")
    assert unknown.status_code == 404
    assert unknown.text == "thread nope not found\n"
    assert not_thread.status_code == 400
    assert not_thread.text == f"channel {parent} is not a thread\n"
