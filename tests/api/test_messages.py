"""Messages and history over real HTTP: posting (stored first; unknown channel 404) and paging."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from loop_server.domain import NewMessage
from loop_server.runtime import ServerHandle
from tests.conftest import add_channels, user_messages


async def test_post_stores_user_message_before_answering(
    client: httpx.AsyncClient, server: ServerHandle
) -> None:
    await add_channels(server, "c1")
    response = await client.post("/api/messages", json={"channel_id": "c1", "content": "hello"})
    assert response.status_code == 204
    assert response.content == b""
    history = (await client.get("/api/channels/c1/messages")).json()
    [message] = user_messages(history)
    assert message["channel_id"] == "c1"
    assert message["author_id"] == "local-user"
    assert message["author_name"] == "local-user"
    assert message["content"] == "hello"
    assert message["is_bot"] is False
    assert re.fullmatch(r"ask-[0-9a-f]{32}", message["msg_id"])
    created = datetime.fromisoformat(message["created_at"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)
    assert message["created_at"].endswith("Z")


async def test_unknown_channel_is_404_and_creates_nothing(
    client: httpx.AsyncClient, server: ServerHandle
) -> None:
    """Upstream creates the channel and starts an agent in an empty directory; a mistyped id
    should not (docs/decisions.md)."""
    response = await client.post("/api/messages", json={"channel_id": "new-chan", "content": "x"})
    assert (response.status_code, response.text) == (404, "channel not found\n")
    assert (await client.get("/api/channels")).json() == []
    assert (await client.get("/api/channels/new-chan/messages")).json()["messages"] == []
    assert server.services.orchestrator.active_chat_channel_ids() == set()


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"nope", "invalid request body"),
        (b'{"content":"x"}', "channel_id is required"),
        (b'{"channel_id":"","content":"x"}', "channel_id is required"),
        (b'{"channel_id":"c"}', "content is required"),
        (b"{}", "channel_id is required"),
        (b"null", "channel_id is required"),
    ],
)
async def test_post_validation(client: httpx.AsyncClient, body: bytes, text: str) -> None:
    response = await client.post("/api/messages", content=body)
    assert response.status_code == 400
    assert response.text == text + "\n"
    assert (await client.get("/api/channels")).json() == []


async def test_history_of_unknown_channel_is_empty(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/channels/ghost/messages")
    assert response.status_code == 200
    assert response.content == b'{"messages":[],"next_cursor":null}\n'


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("limit=0", "invalid limit"),
        ("limit=-3", "invalid limit"),
        ("limit=abc", "invalid limit"),
        ("limit=1.5", "invalid limit"),
        ("cursor=0", "invalid cursor"),
        ("cursor=-1", "invalid cursor"),
        ("cursor=x", "invalid cursor"),
        ("cursor=99999999999999999999", "invalid cursor"),
    ],
)
async def test_history_parameter_errors(client: httpx.AsyncClient, query: str, text: str) -> None:
    response = await client.get(f"/api/channels/c/messages?{query}")
    assert response.status_code == 400
    assert response.text == text + "\n"


async def _fill(server: ServerHandle, channel_id: str, count: int) -> None:
    start = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    await server.store.messages.insert(
        NewMessage(
            channel_id=channel_id,
            msg_id=f"{channel_id}-0",
            author_id="u",
            author_name="u",
            content="0",
            is_bot=False,
            created_at=start,
        ),
        auto_create_platform="local",
    )
    rows = [
        NewMessage(
            channel_id=channel_id,
            msg_id=f"{channel_id}-{i}",
            author_id="u",
            author_name="u",
            content=str(i),
            is_bot=i % 2 == 0,
            created_at=start + timedelta(seconds=i),
        )
        for i in range(1, count)
    ]
    await server.store.messages.insert_many(rows)


async def test_cursor_paging_over_thousands(
    client: httpx.AsyncClient, server: ServerHandle
) -> None:
    await _fill(server, "busy", 3000)
    await _fill(server, "other", 50)
    seen: list[int] = []
    contents: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "200"} if cursor is None else {"limit": "200", "cursor": str(cursor)}
        page = (await client.get("/api/channels/busy/messages", params=params)).json()
        ids = [m["id"] for m in page["messages"]]
        assert ids == sorted(ids, reverse=True)  # newest first
        assert all(m["channel_id"] == "busy" for m in page["messages"])
        seen.extend(ids)
        contents.extend(m["content"] for m in page["messages"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == ids[-1]
    assert pages == 15
    assert len(seen) == 3000
    assert len(set(seen)) == 3000
    assert contents == [str(i) for i in range(2999, -1, -1)]


async def test_default_limit_and_cap(client: httpx.AsyncClient, server: ServerHandle) -> None:
    await _fill(server, "c", 260)
    default = (await client.get("/api/channels/c/messages")).json()
    assert len(default["messages"]) == 50
    assert default["messages"][0]["content"] == "259"
    capped = (await client.get("/api/channels/c/messages", params={"limit": "500"})).json()
    assert len(capped["messages"]) == 200
    assert capped["next_cursor"] == capped["messages"][-1]["id"]
    last = (
        await client.get(
            "/api/channels/c/messages", params={"limit": "200", "cursor": capped["next_cursor"]}
        )
    ).json()
    assert len(last["messages"]) == 60
    assert last["next_cursor"] is None
    assert last["messages"][-1]["content"] == "0"
