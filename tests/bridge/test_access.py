"""Who may call what: the agent socket, scoped agent tokens and their channel scope, over real
HTTP (httpx over the unix socket and over loopback TCP) against a real server."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from loop_server.access import AgentTokens
from loop_server.runtime import ServerHandle, StartupError, run_server
from tests.bridge.conftest import agent_token, token_secret
from tests.conftest import create_channel, make_config

OWNER_TOKEN = "owner-s3cret"


def forbidden(channel_id: str) -> str:
    return f"forbidden: token is scoped to channel {channel_id}\n"


@asynccontextmanager
async def over_socket(server: ServerHandle, token: str = "") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(uds=str(server.config.socket_path))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=headers, timeout=10
    ) as http:
        yield http


async def test_the_agent_socket_needs_a_token_on_every_request(
    server: ServerHandle, client: httpx.AsyncClient
) -> None:
    channel_id = await create_channel(client, "sock")
    async with over_socket(server) as anonymous:
        refused = await anonymous.get("/api/channels")
        assert (refused.status_code, refused.text) == (401, "unauthorized\n")
        assert (await anonymous.get("/api/health")).status_code == 200
        wrong = await anonymous.get("/api/readme", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    async with over_socket(server, token_secret(server, channel_id)) as agent:
        answer = await agent.get("/api/tasks", params={"channel_id": channel_id})
        assert (answer.status_code, answer.json()) == (200, [])
    # Loopback TCP without an owner token is as it was: anyone there is the owner.
    assert (await client.get("/api/channels")).status_code == 200


async def test_websockets_are_not_served_on_the_agent_socket(server: ServerHandle) -> None:
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    for path in ("/api/ws", "/api/ws/terminal"):
        # One connection each: hypercorn closes it after refusing an upgrade.
        async with over_socket(server, OWNER_TOKEN) as http:
            answer = await http.get(path, headers=upgrade)
        assert answer.status_code == 403, path
        assert answer.text == "forbidden: the agent socket serves the REST API only\n"


@pytest.fixture
async def secured(nursery: trio.Nursery, tmp_path: Path) -> ServerHandle:
    config = make_config(tmp_path, token=OWNER_TOKEN)
    handle: ServerHandle = await nursery.start(run_server, config)
    return handle


async def test_the_owners_token_works_everywhere_and_agents_stay_scoped(
    secured: ServerHandle,
) -> None:
    owner = {"Authorization": f"Bearer {OWNER_TOKEN}"}
    async with httpx.AsyncClient(base_url=secured.url, headers=owner) as http:
        channel_id = await create_channel(http, "a")
        other_id = await create_channel(http, "b")
    async with over_socket(secured, OWNER_TOKEN) as http:
        assert (await http.post("/api/channels/create", json={"name": "c"})).status_code == 201
    token = token_secret(secured, channel_id)
    # An agent's token over TCP is the agent's, not a 401 and not the owner's.
    async with httpx.AsyncClient(
        base_url=secured.url, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        mine = await http.get("/api/tasks", params={"channel_id": channel_id})
        theirs = await http.get("/api/tasks", params={"channel_id": other_id})
        assert mine.status_code == 200
        assert (theirs.status_code, theirs.text) == (403, forbidden(channel_id))
        anonymous = await http.get("/api/channels", headers={"Authorization": ""})
        assert anonymous.status_code == 401


async def test_scope_of_an_agent_token_route_by_route(
    server: ServerHandle, client: httpx.AsyncClient
) -> None:
    channel_id = await create_channel(client, "mine")
    thread_id = (
        await client.post("/api/threads", json={"channel_id": channel_id, "name": "t"})
    ).json()["thread_id"]
    other_id = await create_channel(client, "theirs")
    other_thread = (
        await client.post("/api/threads", json={"channel_id": other_id, "name": "u"})
    ).json()["thread_id"]

    async def new_task(owner_channel: str) -> int:
        body = {"channel_id": owner_channel, "schedule": "1h", "type": "interval", "prompt": "p"}
        return int((await client.post("/api/tasks", json=body)).json()["id"])

    my_task, their_task = await new_task(thread_id), await new_task(other_id)
    listing = {c["channel_id"]: c for c in (await client.get("/api/channels")).json()}
    my_dir, their_dir = listing[channel_id]["dir_path"], listing[other_id]["dir_path"]
    token = token_secret(server, channel_id)

    allowed: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/api/readme", {}),
        ("GET", "/api/openapi.json", {}),
        ("GET", f"/api/channels/{channel_id}/messages", {}),
        ("GET", f"/api/channels/{thread_id}/messages", {}),
        ("GET", "/api/tasks", {"params": {"channel_id": thread_id}}),
        ("GET", f"/api/tasks/{my_task}", {}),
        ("GET", f"/api/tasks/{my_task}/runs", {}),
        ("PATCH", f"/api/tasks/{my_task}", {"json": {"enabled": False}}),
        (
            "POST",
            "/api/tasks",
            {
                "json": {
                    "channel_id": channel_id,
                    "schedule": "1h",
                    "type": "interval",
                    "prompt": "p",
                }
            },
        ),
        ("POST", "/api/threads", {"json": {"channel_id": channel_id, "name": "x"}}),
        ("POST", "/api/memory/index", {"json": {"channel_id": thread_id}}),
        ("POST", "/api/memory/index", {"json": {"dir_path": my_dir}}),
        ("POST", "/api/memory/search", {"json": {"query": "q", "channel_id": channel_id}}),
        # Unknown or invalid ids get the route's own answer.
        ("GET", "/api/tasks/999999", {}),
        ("GET", "/api/tasks/abc", {}),
        ("DELETE", "/api/threads/no-such-thread", {}),
        ("POST", "/api/messages", {"json": "not an object"}),
    ]
    refused: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/channels/{other_id}/messages", {}),
        ("GET", f"/api/channels/{other_thread}/messages", {}),
        ("GET", "/api/tasks", {"params": {"channel_id": other_id}}),
        ("GET", f"/api/tasks/{their_task}", {}),
        ("GET", f"/api/tasks/{their_task}/runs", {}),
        ("POST", f"/api/tasks/{their_task}/run", {}),
        ("PATCH", f"/api/tasks/{their_task}", {"json": {"enabled": False}}),
        ("DELETE", f"/api/tasks/{their_task}", {}),
        (
            "POST",
            "/api/tasks",
            {"json": {"channel_id": other_id, "schedule": "1h", "type": "interval", "prompt": "p"}},
        ),
        ("POST", "/api/threads", {"json": {"channel_id": other_id, "name": "x"}}),
        ("DELETE", f"/api/threads/{other_thread}", {}),
        ("POST", "/api/messages", {"json": {"channel_id": other_id, "content": "hi"}}),
        # Field names match case-insensitively in the route's decoder; so they do here.
        ("POST", "/api/messages", {"json": {"CHANNEL_ID": other_id, "content": "hi"}}),
        ("POST", "/api/messages", {"json": {"content": "no channel"}}),
        ("POST", "/api/memory/search", {"json": {"query": "q", "channel_id": other_id}}),
        ("POST", "/api/memory/search", {"json": {"query": "q", "dir_path": their_dir}}),
        ("POST", "/api/memory/index", {"json": {"dir_path": "/etc"}}),
        # dir_path wins over channel_id in the route: so it does here.
        ("POST", "/api/memory/index", {"json": {"dir_path": their_dir, "channel_id": channel_id}}),
        ("POST", "/api/channels", {"json": {"dir_path": "/tmp"}}),
        ("POST", "/api/channels/create", {"json": {"name": "new"}}),
        ("DELETE", f"/api/channels/{channel_id}", {}),
        ("DELETE", f"/api/channels/{other_id}", {}),
        ("POST", "/api/commands", {"json": {"channel_id": channel_id, "command": "status"}}),
        ("GET", "/api/nothing-here", {}),
    ]
    async with over_socket(server, token) as agent:
        for method, path, kwargs in allowed:
            answer = await agent.request(method, path, **kwargs)
            assert answer.status_code != 403, (method, path, answer.text)
            assert answer.status_code < 500, (method, path, answer.text)
        for method, path, kwargs in refused:
            answer = await agent.request(method, path, **kwargs)
            assert (answer.status_code, answer.text) == (403, forbidden(channel_id)), (
                method,
                path,
            )
        shown = {c["channel_id"] for c in (await agent.get("/api/channels")).json()}
    everything = (await client.get("/api/channels")).json()
    family = {
        c["channel_id"] for c in everything if channel_id in (c["channel_id"], c["parent_id"])
    }
    assert shown == family
    assert {channel_id, thread_id} <= family
    assert not {other_id, other_thread} & family
    # Nothing a refused call named was touched.
    assert (await client.get(f"/api/tasks/{their_task}")).json()["enabled"] is True
    assert (await client.get(f"/api/channels/{other_id}/messages")).json()["messages"] == []
    assert {other_id, other_thread, channel_id} <= {
        c["channel_id"] for c in (await client.get("/api/channels")).json()
    }


async def test_a_threads_token_acts_for_its_parents_family(
    server: ServerHandle, client: httpx.AsyncClient
) -> None:
    parent = await create_channel(client, "parent")
    thread = (await client.post("/api/threads", json={"channel_id": parent, "name": "t"})).json()[
        "thread_id"
    ]
    other = await create_channel(client, "other")
    token = token_secret(server, thread)
    async with over_socket(server, token) as agent:
        assert (await agent.get("/api/tasks", params={"channel_id": parent})).status_code == 200
        refused = await agent.get("/api/tasks", params={"channel_id": other})
        assert (refused.status_code, refused.text) == (403, forbidden(thread))


async def test_a_revoked_token_is_nobody(server: ServerHandle, client: httpx.AsyncClient) -> None:
    channel_id = await create_channel(client, "gone")
    tokens: AgentTokens = server.services.agent_tokens
    issued = agent_token(server, channel_id)
    file = trio.Path(issued.path)
    secret = await file.read_text()
    assert (await file.stat()).st_mode & 0o777 == 0o400
    tokens.revoke(issued.token_id)
    assert not await file.exists()
    async with over_socket(server, secret) as agent:
        assert (await agent.get("/api/readme")).status_code == 401


def test_tokens_survive_a_restart_and_stray_files_go(tmp_path: Path) -> None:
    directory = tmp_path / "agent-tokens"
    first = AgentTokens(directory)
    first.load()
    kept = first.issue("chan-a")
    dropped = first.issue("chan-b")
    first.revoke(dropped.token_id)
    (directory / "stray").write_text("not a token")
    secret = Path(kept.path).read_bytes()

    second = AgentTokens(directory)
    second.load()
    assert second.channel_of(secret) == "chan-a"
    assert second.channel_of(b"anything else") is None
    assert sorted(p.name for p in directory.iterdir()) == sorted([kept.token_id, "index.json"])
    second.revoke(kept.token_id)
    second.revoke(kept.token_id)  # twice is harmless
    assert second.channel_of(secret) is None


def test_tokens_issued_and_revoked_from_many_threads_at_once(tmp_path: Path) -> None:
    """Runs that start together issue their tokens in worker threads at the same moment (the
    signal-shutdown test's scheduled job and chat run). Unserialised, two saves of the index
    raced on its one temporary file: one failed with FileNotFoundError ("writing agent token:
    No such file or directory", so the run failed before its container was made) and the
    index lost tokens. Every call must succeed, and memory, index and files must agree."""
    directory = tmp_path / "agent-tokens"
    tokens = AgentTokens(directory)
    tokens.load()
    threads, rounds = 8, 20
    start = threading.Barrier(threads)

    def churn(worker: int) -> set[str]:
        start.wait(timeout=10)
        kept = set()
        for i in range(rounds):
            issued = tokens.issue(f"chan-{worker}")
            if i % 2:
                tokens.revoke(issued.token_id)
            else:
                kept.add(issued.token_id)
        return kept

    with ThreadPoolExecutor(threads) as pool:
        kept = set().union(*pool.map(churn, range(threads)))  # re-raises any thread's error
    assert len(kept) == threads * rounds // 2
    assert tokens.token_ids() == kept
    files = {p.name for p in directory.iterdir() if not p.name.startswith(".")}
    assert files == kept | {"index.json"}
    reloaded = AgentTokens(directory)
    reloaded.load()
    assert reloaded.token_ids() == kept


def test_an_unreadable_index_starts_empty(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "agent-tokens"
    directory.mkdir()
    (directory / "index.json").write_text("{torn")
    tokens = AgentTokens(directory)
    tokens.load()
    assert tokens.statistics().live_tokens == 0
    assert "ignoring unreadable index.json" in caplog.text


async def start(nursery: trio.Nursery, tmp_path: Path, **overrides: object) -> ServerHandle:
    with trio.fail_after(10):
        handle: ServerHandle = await nursery.start(
            partial(run_server, make_config(tmp_path, **overrides))
        )
    return handle


async def test_the_socket_file_lifecycle(nursery: trio.Nursery, tmp_path: Path) -> None:
    path = tmp_path / "data" / "run" / "api.sock"
    path.parent.mkdir(parents=True)
    # A socket file left behind by a server that is gone is replaced.
    with trio.socket.socket(trio.socket.AF_UNIX) as stale:
        await stale.bind(str(path))
    async with trio.open_nursery() as own:
        handle = await start(own, tmp_path)
        assert handle.config.socket_path == path
        async with over_socket(handle) as http:
            assert (await http.get("/api/health")).status_code == 200
        # A second server on the same socket is refused with a clear reason.
        with pytest.raises(StartupError, match="another server is listening on"):
            await start(nursery, tmp_path / "second", api_socket=str(path))
        handle.shutdown()
    # The server has ended: its socket file is gone.
    assert not await trio.Path(path).exists()


@pytest.mark.parametrize(
    ("make_path", "message"),
    [
        (lambda tmp: tmp / ("x" * 120) / "api.sock", "longer than a unix socket allows|bytes long"),
        (lambda tmp: tmp / "plain-file", "exists and is not a socket"),
    ],
)
async def test_an_unusable_socket_path_is_a_startup_error(
    nursery: trio.Nursery, tmp_path: Path, make_path: Any, message: str
) -> None:
    path = make_path(tmp_path)
    if path.name == "plain-file":
        path.write_text("mine")
    with pytest.raises(StartupError, match=message):
        await start(nursery, tmp_path, api_socket=str(path))
    if path.name == "plain-file":
        assert path.read_text() == "mine"


async def test_no_socket_when_disabled(nursery: trio.Nursery, tmp_path: Path) -> None:
    handle = await start(nursery, tmp_path, api_socket="none")
    assert handle.config.socket_path is None
    assert not (tmp_path / "data" / "run").exists()
