"""Task CRUD over real HTTP: upstream's routes, invalid schedule/type → 400, and nonsense refused
(unknown channel 404, empty prompt, negative auto_delete_sec, a once time in the past, PATCH and
DELETE of an unknown task 404)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from loop_server.runtime import ServerHandle
from tests.conftest import FixedClock, add_channels

NOW = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def client(server: ServerHandle) -> AsyncIterator[httpx.AsyncClient]:
    """The shared client, once channels ``c1`` and ``c2`` exist (a task needs its channel).
    Not an autouse fixture: pytest-trio would not make the test wait for it."""
    await add_channels(server, "c1", "c2")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        yield http


async def _create(client: httpx.AsyncClient, **fields: object) -> int:
    body = {"channel_id": "c1", "schedule": "*/15 * * * *", "type": "cron", "prompt": "p"}
    body.update(fields)
    response = await client.post("/api/tasks", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_create_and_get_cron_task(client: httpx.AsyncClient) -> None:
    task_id = await _create(client, prompt="check the build", auto_delete_sec=60)
    response = await client.get(f"/api/tasks/{task_id}")
    assert response.status_code == 200
    assert response.json() == {
        "id": task_id,
        "channel_id": "c1",
        "schedule": "*/15 * * * *",
        "type": "cron",
        "prompt": "check the build",
        "enabled": True,
        "next_run_at": "2026-03-01T10:15:00Z",
        "auto_delete_sec": 60,
    }


async def test_interval_and_once_next_run(client: httpx.AsyncClient) -> None:
    interval = await _create(client, type="interval", schedule="1h30m")
    once = await _create(client, type="once", schedule="2026-03-02T08:00:00+02:00")
    got_interval = (await client.get(f"/api/tasks/{interval}")).json()
    got_once = (await client.get(f"/api/tasks/{once}")).json()
    assert got_interval["next_run_at"] == "2026-03-01T11:30:30Z"
    assert got_once["next_run_at"] == "2026-03-02T06:00:00Z"


async def test_template_name_is_stored(client: httpx.AsyncClient) -> None:
    task_id = await _create(client, template_name="daily-report")
    assert (await client.get(f"/api/tasks/{task_id}")).json()["template_name"] == "daily-report"


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"schedule": "x"}, 'calculating next run: parsing cron schedule "x": '),
        (
            {"type": "interval", "schedule": "5d"},
            'calculating next run: parsing interval "5d": time: unknown unit "d" in duration "5d"',
        ),
        (
            {"type": "once", "schedule": "tomorrow"},
            'calculating next run: parsing once schedule "tomorrow": must be RFC3339 '
            "(e.g. 2026-02-09T14:30:00Z): ",
        ),
        ({"type": "weekly"}, 'calculating next run: unknown task type "weekly"'),
    ],
)
async def test_invalid_schedule_or_type_is_400_and_stores_nothing(
    client: httpx.AsyncClient, fields: dict[str, object], text: str
) -> None:
    body = {"channel_id": "c1", "schedule": "*/15 * * * *", "type": "cron", "prompt": "p"}
    body.update(fields)
    response = await client.post("/api/tasks", json=body)
    assert response.status_code == 400
    assert response.text.startswith(text)
    assert response.text.endswith("\n")
    assert (await client.get("/api/tasks", params={"channel_id": "c1"})).json() == []


async def test_create_wrong_types_are_400(client: httpx.AsyncClient) -> None:
    for body in (b'{"auto_delete_sec":"5"}', b'{"auto_delete_sec":1.5}', b'{"prompt":true}'):
        response = await client.post("/api/tasks", content=body)
        assert response.status_code == 400
        assert response.text == "invalid request body\n"


async def test_list_orders_by_next_run_and_hides_past_once(
    client: httpx.AsyncClient, clock: FixedClock
) -> None:
    await _create(client, type="once", schedule="2026-03-01T10:05:00Z")
    clock.current = datetime(2026, 3, 1, 10, 6, tzinfo=UTC)  # now that once-task is past
    late = await _create(client, type="interval", schedule="2h")
    soon = await _create(client, type="interval", schedule="10m")
    other = await _create(client, channel_id="c2")
    listing = (await client.get("/api/tasks", params={"channel_id": "c1"})).json()
    assert [t["id"] for t in listing] == [soon, late]
    assert [t["id"] for t in (await client.get("/api/tasks?channel_id=c2")).json()] == [other]
    assert (await client.get("/api/tasks?channel_id=none")).content == b"[]\n"


async def test_list_requires_channel_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/tasks")
    assert response.status_code == 400
    assert response.text == "channel_id query parameter required\n"


async def test_get_errors(client: httpx.AsyncClient) -> None:
    bad = await client.get("/api/tasks/abc")
    missing = await client.get("/api/tasks/999")
    assert (bad.status_code, bad.text) == (400, "invalid task id\n")
    assert (missing.status_code, missing.text) == (404, "task not found\n")


async def test_delete_then_delete_again_is_404(client: httpx.AsyncClient) -> None:
    task_id = await _create(client)
    assert (await client.delete(f"/api/tasks/{task_id}")).status_code == 204
    assert (await client.get(f"/api/tasks/{task_id}")).status_code == 404
    again = await client.delete(f"/api/tasks/{task_id}")  # upstream: 204
    assert (again.status_code, again.text) == (404, "task not found\n")
    assert (await client.delete("/api/tasks/x1")).status_code == 400


async def test_patch_enabled(client: httpx.AsyncClient) -> None:
    task_id = await _create(client)
    response = await client.patch(f"/api/tasks/{task_id}", json={"enabled": False})
    assert response.status_code == 200
    assert response.content == b""
    assert (await client.get(f"/api/tasks/{task_id}")).json()["enabled"] is False
    unknown = await client.patch("/api/tasks/4242", json={"enabled": True})
    assert (unknown.status_code, unknown.text) == (404, "task not found\n")  # upstream: 200


async def test_patch_edit_recomputes_only_for_schedule_or_type(
    client: httpx.AsyncClient,
) -> None:
    task_id = await _create(client)
    await client.patch(f"/api/tasks/{task_id}", json={"prompt": "new prompt", "enabled": None})
    task = (await client.get(f"/api/tasks/{task_id}")).json()
    assert task["prompt"] == "new prompt"
    assert task["next_run_at"] == "2026-03-01T10:15:00Z"
    response = await client.patch(
        f"/api/tasks/{task_id}", json={"type": "interval", "schedule": "45m", "auto_delete_sec": 9}
    )
    assert response.status_code == 200
    task = (await client.get(f"/api/tasks/{task_id}")).json()
    assert (task["type"], task["schedule"], task["auto_delete_sec"]) == ("interval", "45m", 9)
    assert task["next_run_at"] == "2026-03-01T10:45:30Z"
    assert task["enabled"] is True


async def test_patch_invalid_edit_changes_nothing(client: httpx.AsyncClient) -> None:
    task_id = await _create(client)
    before = (await client.get(f"/api/tasks/{task_id}")).json()
    response = await client.patch(
        f"/api/tasks/{task_id}", json={"enabled": False, "schedule": "61 * * * *"}
    )
    assert response.status_code == 400
    assert response.text.startswith('calculating next run: parsing cron schedule "61 * * * *"')
    assert (await client.get(f"/api/tasks/{task_id}")).json() == before


@pytest.mark.parametrize(
    ("path", "body", "status", "text"),
    [
        ("/api/tasks/abc", b"{", 400, "invalid task id"),
        ("/api/tasks/1", b"{", 400, "invalid request body"),
        ("/api/tasks/1", b"{}", 400, "at least one field is required"),
        ("/api/tasks/1", b'{"enabled":null,"prompt":null}', 400, "at least one field is required"),
        ("/api/tasks/1", b'{"enabled":"yes"}', 400, "invalid request body"),
        # Upstream answers 500 here; an unknown task is a 404 (docs/decisions.md).
        ("/api/tasks/999", b'{"prompt":"x"}', 404, "task not found"),
        ("/api/tasks/999", b'{"enabled":false}', 404, "task not found"),
        ("/api/tasks/1", b'{"prompt":""}', 400, "prompt is required"),
        ("/api/tasks/1", b'{"prompt":" \\n"}', 400, "prompt is required"),
        ("/api/tasks/1", b'{"auto_delete_sec":-1}', 400, "auto_delete_sec must not be negative"),
        (
            "/api/tasks/1",
            b'{"type":"once","schedule":"2026-03-01T10:00:00Z"}',
            400,
            "calculating next run: once time 2026-03-01T10:00:00Z is in the past",
        ),
    ],
)
async def test_patch_errors(
    client: httpx.AsyncClient, path: str, body: bytes, status: int, text: str
) -> None:
    assert await _create(client) == 1
    before = (await client.get("/api/tasks/1")).json()
    response = await client.patch(path, content=body)
    assert response.status_code == status
    assert response.text == text + "\n"
    assert (await client.get("/api/tasks/1")).json() == before


@pytest.mark.parametrize(
    ("fields", "status", "text"),
    [
        ({"channel_id": "nowhere"}, 404, "channel not found"),
        ({"channel_id": ""}, 400, "channel_id is required"),
        ({"prompt": ""}, 400, "prompt is required"),
        ({"prompt": "  \t"}, 400, "prompt is required"),
        ({"auto_delete_sec": -5}, 400, "auto_delete_sec must not be negative"),
        (
            {"type": "once", "schedule": "2026-03-01T10:00:29Z"},
            400,
            "calculating next run: once time 2026-03-01T10:00:29Z is in the past",
        ),
    ],
)
async def test_create_refuses_nonsense_and_stores_nothing(
    client: httpx.AsyncClient, fields: dict[str, object], status: int, text: str
) -> None:
    body = {"channel_id": "c1", "schedule": "*/15 * * * *", "type": "cron", "prompt": "p"}
    body.update(fields)
    response = await client.post("/api/tasks", json=body)
    assert (response.status_code, response.text) == (status, text + "\n")
    for channel in ("c1", "nowhere"):
        assert (await client.get("/api/tasks", params={"channel_id": channel})).json() == []


async def test_a_once_time_now_or_later_is_accepted(client: httpx.AsyncClient) -> None:
    now = await _create(client, type="once", schedule="2026-03-01T10:00:30Z")
    assert (await client.get(f"/api/tasks/{now}")).json()["next_run_at"] == "2026-03-01T10:00:30Z"


async def test_deleting_a_channel_deletes_its_tasks_and_its_threads_tasks(
    client: httpx.AsyncClient, server: ServerHandle
) -> None:
    """A task outliving its channel would fail on every run (docs/decisions.md)."""
    thread = await client.post("/api/threads", json={"channel_id": "c1", "name": "t"})
    thread_id = thread.json()["thread_id"]
    own = await _create(client)
    in_thread = await _create(client, channel_id=thread_id)
    elsewhere = await _create(client, channel_id="c2")
    await server.store.runs.start(own, NOW)  # a run log, which goes with its task
    assert (await client.delete("/api/channels/c1")).status_code == 204
    for gone in (own, in_thread):
        assert (await client.get(f"/api/tasks/{gone}")).status_code == 404
        assert (await client.get(f"/api/tasks/{gone}/runs")).status_code == 404
    assert (await client.get(f"/api/tasks/{elsewhere}")).status_code == 200
    assert await server.store.tasks.due(datetime(2100, 1, 1, tzinfo=UTC)) == [
        await server.store.tasks.get(elsewhere)
    ]


async def test_deleting_a_thread_deletes_its_tasks(client: httpx.AsyncClient) -> None:
    thread = await client.post("/api/threads", json={"channel_id": "c1", "name": "t"})
    thread_id = thread.json()["thread_id"]
    in_thread = await _create(client, channel_id=thread_id)
    parents = await _create(client)
    assert (await client.delete(f"/api/threads/{thread_id}")).status_code == 204
    assert (await client.get(f"/api/tasks/{in_thread}")).status_code == 404
    assert (await client.get(f"/api/tasks/{parents}")).status_code == 200
