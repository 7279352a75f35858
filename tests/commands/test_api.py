"""``POST /api/commands`` on the real server (SPEC §3.13): status codes and texts, the default
author, background dispatch, and replies arriving as ``message.created`` on ``/api/ws``.

Rules: see this package's conftest. Replies are awaited on the events socket under
``trio.fail_after``; nothing sleeps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import WebSocketConnection

from loop_server.clock import SystemClock
from loop_server.commands import CommandHandler
from loop_server.protocols import Interaction, InteractionHandler
from loop_server.runtime import BACKGROUND_LIMIT, ServerHandle, load_readme
from loop_server.services.channels import StoreChannelGrants
from tests.conftest import add_channels
from tests.events.events_helpers import connect_ws

DEADLINE = 10


def attach(server: ServerHandle, handler: InteractionHandler | None) -> None:
    # ApiDeps is read at request time; until runtime.py wires the handler, tests attach it.
    server.services.deps.interactions = handler


def real_handler(server: ServerHandle) -> CommandHandler:
    clock = SystemClock()
    return CommandHandler(
        tasks=server.services.tasks,
        replies=server.services.messages,
        stop_run=server.services.orchestrator.stop,
        readme=load_readme(),
        channels=StoreChannelGrants(server.store.channels, clock=clock),
        clock=clock,
    )


class Recording:
    """An ``InteractionHandler`` that keeps what it was given."""

    def __init__(self) -> None:
        self.interactions: list[Interaction] = []
        self.arrived = trio.Event()

    async def handle_interaction(self, interaction: Interaction) -> None:
        self.interactions.append(interaction)
        self.arrived.set()


@pytest.fixture
async def channel_id(client: httpx.AsyncClient) -> str:
    created = await client.post("/api/channels/create", json={"name": "commands"})
    assert created.status_code == 201
    return str(created.json()["channel_id"])


@pytest.fixture
async def events(server: ServerHandle, channel_id: str) -> AsyncIterator[WebSocketConnection]:
    async with connect_ws(server.port, f"/api/ws?channels={channel_id}") as ws:
        with trio.fail_after(DEADLINE):
            await server.services.hub.wait_subscriber_count(1)
        yield ws


async def next_bot_message(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(DEADLINE):
        while True:
            event = json.loads(await ws.get_message())
            if event["type"] == "message.created" and event["data"]["is_bot"]:
                return dict(event)


async def post(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        response = await client.post("/api/commands", content=body)
    else:
        response = await client.post("/api/commands", json=body)
    # Say plainly what is missing while the route module is not registered.
    assert response.text != "404 page not found\n", "add `commands` to api/app.py's modules"
    return response


def assert_text(response: httpx.Response, status: int, text: str) -> None:
    assert (response.status_code, response.text) == (status, text + "\n")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("body", [{"channel_id": "c", "command": "status"}, b"{not json", b""])
async def test_503_before_the_body_is_read(
    server: ServerHandle, client: httpx.AsyncClient, body: Any
) -> None:
    attach(server, None)
    assert_text(await post(client, body), 503, "commands not configured")


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"{not json", b"[]", b'"status"', b'{"command": 1}', b'{"channel_id": true}'],
)
async def test_invalid_body(server: ServerHandle, client: httpx.AsyncClient, body: bytes) -> None:
    attach(server, Recording())
    assert_text(await post(client, body), 400, "invalid request body")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({}, "channel_id is required"),
        (None, "channel_id is required"),  # JSON null decodes to "no fields", as Go's decoder
        ({"command": "status"}, "channel_id is required"),
        ({"channel_id": "", "command": "status"}, "channel_id is required"),
        ({"channel_id": "c"}, "command is required"),
        ({"channel_id": "c", "command": ""}, "command is required"),
        ({"channel_id": "c", "command": None}, "command is required"),
        ({"channel_id": "c", "command": "   "}, "unknown command"),
        ({"channel_id": "c", "command": "''"}, "unknown command"),
        ({"channel_id": "c", "command": "fly me to the moon"}, "unknown command"),
        ({"channel_id": "c", "command": "allow_role r"}, "unknown command"),
    ],
)
async def test_validation_texts(
    server: ServerHandle, client: httpx.AsyncClient, body: Any, text: str
) -> None:
    recording = Recording()
    attach(server, recording)
    assert_text(await post(client, json.dumps(body)), 400, text)
    assert recording.interactions == []


async def test_parsed_interaction_and_default_author(
    server: ServerHandle, client: httpx.AsyncClient
) -> None:
    recording = Recording()
    attach(server, recording)
    await add_channels(server, "c")
    response = await post(
        client,
        {"channel_id": "c", "command": "schedule type=cron schedule='0 9 * * *' prompt=\"a b\""},
    )
    assert (response.status_code, response.content) == (204, b"")
    with trio.fail_after(DEADLINE):
        await recording.arrived.wait()
    assert recording.interactions == [
        Interaction(
            channel_id="c",
            command_name="schedule",
            author_id="local-user",
            options={"type": "cron", "schedule": "0 9 * * *", "prompt": "a b"},
        )
    ]


async def test_author_id_is_passed_on(server: ServerHandle, client: httpx.AsyncClient) -> None:
    recording = Recording()
    attach(server, recording)
    await add_channels(server, "c")
    # Unknown fields are ignored and keys match case-insensitively, as Go's decoder.
    body = {"Channel_ID": "c", "author_id": "U42", "command": "status", "extra": [1]}
    assert (await post(client, body)).status_code == 204
    with trio.fail_after(DEADLINE):
        await recording.arrived.wait()
    assert [(i.author_id, i.command_name) for i in recording.interactions] == [("U42", "status")]


async def test_204_comes_before_the_command_runs(
    server: ServerHandle,
    client: httpx.AsyncClient,
    channel_id: str,
    events: WebSocketConnection,
) -> None:
    release = trio.Event()
    started = trio.Event()
    inner = real_handler(server)

    class Gated:
        async def handle_interaction(self, interaction: Interaction) -> None:
            started.set()
            await release.wait()
            await inner.handle_interaction(interaction)

    attach(server, Gated())
    response = await post(client, {"channel_id": channel_id, "command": "status"})
    assert response.status_code == 204  # answered while the command is still held back
    with trio.fail_after(DEADLINE):
        await started.wait()
    history = (await client.get(f"/api/channels/{channel_id}/messages")).json()
    assert history["messages"] == []
    release.set()
    event = await next_bot_message(events)
    assert event["channel_id"] == channel_id
    assert event["data"]["content"] == "Loop bot is running."
    assert event["data"]["author_id"] == "loop-bot"
    history = (await client.get(f"/api/channels/{channel_id}/messages")).json()
    assert [(m["content"], m["is_bot"]) for m in history["messages"]] == [
        ("Loop bot is running.", True)
    ]


async def test_commands_over_http(
    server: ServerHandle,
    client: httpx.AsyncClient,
    channel_id: str,
    events: WebSocketConnection,
) -> None:
    attach(server, real_handler(server))

    async def command(text: str, author: str = "") -> str:
        body = {"channel_id": channel_id, "command": text}
        if author:
            body["author_id"] = author
        assert (await post(client, body)).status_code == 204
        return str((await next_bot_message(events))["data"]["content"])

    assert await command("tasks") == "No scheduled tasks."
    reply = await command("schedule type=interval schedule=1h prompt='watch the build'")
    assert reply.startswith("Task scheduled (ID: ")
    task_id = int(reply.removeprefix("Task scheduled (ID: ").removesuffix(")."))
    listing = await command("tasks")
    assert listing.startswith(
        f"Scheduled tasks:\n- **ID {task_id}** [interval] [enabled] `1h` — watch the build (next: "
    )
    assert await command(f"toggle {task_id}") == f"Task {task_id} disabled."
    tasks = (await client.get("/api/tasks", params={"channel_id": channel_id})).json()
    assert [(t["id"], t["enabled"]) for t in tasks] == [(task_id, False)]
    assert await command("readme") == load_readme()
    assert await command("stop") == "No active run to stop."
    assert await command("iamtheowner", author="alice") == (
        "✅ <@alice> is now the owner of this channel."
    )
    assert await command("status") == "⛔ You don't have permission to use this command."
    assert await command("allow_user local-user", author="bob") == (
        "⛔ Only owners can manage permissions."
    )
    assert await command("allow_user local-user", author="alice") == (
        "✅ <@local-user> granted member role."
    )
    assert await command("status") == "Loop bot is running."
    assert await command(f"cancel {task_id}") == f"Task {task_id} cancelled."
    assert (await client.get(f"/api/tasks/{task_id}")).status_code == 404


async def test_once_task_times_are_the_servers_local_time(
    server: ServerHandle,
    client: httpx.AsyncClient,
    channel_id: str,
    events: WebSocketConnection,
    local_zone: Callable[[str], None],
) -> None:
    """SPEC A.6: a once-task shows "the local time `YYYY-MM-DD HH:MM TZ`" — the server's zone,
    here New York's winter time (a POSIX TZ, so no zone database is needed)."""
    local_zone("EST+5")

    async def command(text: str) -> str:
        assert (await post(client, {"channel_id": channel_id, "command": text})).status_code == 204
        return str((await next_bot_message(events))["data"]["content"])

    reply = await command("schedule type=once schedule=2030-01-02T03:04:05Z prompt='ship it'")
    task_id = int(reply.removeprefix("Task scheduled (ID: ").removesuffix(")."))
    listing = await command("tasks")
    assert listing.startswith(
        f"Scheduled tasks:\n- **ID {task_id}** [once] [enabled] 2030-01-01 22:04 EST — ship it"
        " (next: "
    )
    assert "\nNext run: 2030-01-01 22:04 EST (in " in await command(f"task {task_id}")


class FailureLogged(logging.Handler):
    """Wakes the test when the background spawner logs a command's failure."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.logged = trio.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.logged.set()


async def test_a_failing_handler_does_not_reach_the_caller(
    server: ServerHandle, client: httpx.AsyncClient
) -> None:
    class Broken:
        async def handle_interaction(self, interaction: Interaction) -> None:
            raise RuntimeError("boom")

    attach(server, Broken())
    await add_channels(server, "c")
    watcher = FailureLogged()
    logger = logging.getLogger("loop_server")
    logger.addHandler(watcher)
    try:
        response = await post(client, {"channel_id": "c", "command": "status"})
        assert (response.status_code, response.content) == (204, b"")
        with trio.fail_after(DEADLINE):
            await watcher.logged.wait()
    finally:
        logger.removeHandler(watcher)
    assert watcher.messages == ["background task command status in c failed"]
    assert (await client.get("/api/health")).status_code == 200


@pytest.mark.docker
async def test_stop_cancels_a_real_run(
    server: ServerHandle,
    client: httpx.AsyncClient,
    channel_id: str,
    events: WebSocketConnection,
    loop_test_image: object,
) -> None:
    """The agent stub hangs; ``stop`` cancels the run, which posts "Run stopped."."""
    attach(server, real_handler(server))

    async def next_event(kind: str) -> dict[str, Any]:
        with trio.fail_after(60):
            while True:
                event = json.loads(await events.get_message())
                if event["type"] == kind:
                    return dict(event)

    message = {"channel_id": channel_id, "content": "STUB:HANG"}
    assert (await client.post("/api/messages", json=message)).status_code == 204
    assert (await next_event("agent.status"))["data"] == {"status": "running"}
    assert (await post(client, {"channel_id": channel_id, "command": "stop"})).status_code == 204
    assert (await next_bot_message(events))["data"]["content"] == "Run stopped."
    assert (await next_event("agent.status"))["data"] == {"status": "error", "error": "stopped"}
    assert (await post(client, {"channel_id": channel_id, "command": "stop"})).status_code == 204
    assert (await next_bot_message(events))["data"]["content"] == "No active run to stop."


async def test_unknown_channel_is_404_and_runs_nothing(
    server: ServerHandle, client: httpx.AsyncClient
) -> None:
    """Upstream answers 204 and only logs; the reply would have nowhere to go."""
    recording = Recording()
    attach(server, recording)
    response = await post(client, {"channel_id": "nowhere", "command": "status"})
    assert (response.status_code, response.text) == (404, "channel not found\n")
    # A bad command is still a 400 first: the body is judged before the channel is looked up.
    bad = await post(client, {"channel_id": "nowhere", "command": "frobnicate"})
    assert (bad.status_code, bad.text) == (400, "unknown command\n")
    assert recording.interactions == []


async def test_commands_beyond_the_background_limit_wait_for_a_running_one_to_end(
    server: ServerHandle, client: httpx.AsyncClient, channel_id: str
) -> None:
    """At most BACKGROUND_LIMIT commands run at once: the next request is answered only once
    one of them has ended, and then its command runs (nothing is dropped)."""
    started: list[Interaction] = []
    release = trio.Semaphore(0)

    class Held:
        async def handle_interaction(self, interaction: Interaction) -> None:
            started.append(interaction)
            await release.acquire()

    attach(server, Held())
    body = {"channel_id": channel_id, "command": "status"}
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await post(client, body)).status_code)

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            for _ in range(BACKGROUND_LIMIT):
                nursery.start_soon(one)
    assert statuses == [204] * BACKGROUND_LIMIT
    assert len(started) == BACKGROUND_LIMIT

    late: list[int] = []

    async def last() -> None:
        late.append((await post(client, body)).status_code)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(last)
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert late == []  # waiting for a slot, not answered
        assert len(started) == BACKGROUND_LIMIT
        release.release()  # one held command ends
    assert late == [204]
    assert len(started) == BACKGROUND_LIMIT + 1
    for _ in range(BACKGROUND_LIMIT):
        release.release()
