"""Run history and run-now over real HTTP (SPEC A.4). The executor here answers in-process; the
end-to-end run through the agent container is in the agent-run tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import trio

from loop_server.domain import Task
from loop_server.runtime import ServerHandle
from loop_server.scheduler import Scheduler
from tests.conftest import add_channels


@dataclass
class GatedExecutor:
    gate: trio.Event = field(default_factory=trio.Event)
    entered: trio.Event = field(default_factory=trio.Event)

    async def execute(self, task: Task) -> str:
        self.entered.set()
        await self.gate.wait()
        if "fail" in task.prompt:
            raise RuntimeError("the agent gave up")
        return f"done: {task.prompt}"


@pytest.fixture
def executor() -> GatedExecutor:
    return GatedExecutor()


@pytest.fixture
async def client(server: ServerHandle) -> AsyncIterator[httpx.AsyncClient]:
    """The shared client, once channel ``c1`` exists (a task needs its channel)."""
    await add_channels(server, "c1")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        yield http


async def _task(client: httpx.AsyncClient, prompt: str = "p") -> int:
    body = {"channel_id": "c1", "schedule": "0 0 1 1 *", "type": "cron", "prompt": prompt}
    response = await client.post("/api/tasks", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _idle(server: ServerHandle) -> None:
    scheduler = server.services.scheduler
    assert isinstance(scheduler, Scheduler)
    with trio.fail_after(10):
        await scheduler.wait_idle()


async def test_run_now_and_history(
    client: httpx.AsyncClient, server: ServerHandle, executor: GatedExecutor
) -> None:
    task_id = await _task(client, "summarise")
    response = await client.post(f"/api/tasks/{task_id}/run")
    assert response.status_code == 202
    run_id = response.json()["run_id"]
    with trio.fail_after(10):
        await executor.entered.wait()
    running = (await client.get(f"/api/tasks/{task_id}/runs")).json()
    assert running["next_cursor"] is None
    [run] = running["runs"]
    assert (run["id"], run["task_id"], run["status"], run["finished_at"]) == (
        run_id,
        task_id,
        "running",
        None,
    )
    again = await client.post(f"/api/tasks/{task_id}/run")
    assert (again.status_code, again.text) == (409, "task is already running\n")
    executor.gate.set()
    await _idle(server)
    [done] = (await client.get(f"/api/tasks/{task_id}/runs")).json()["runs"]
    assert done["status"] == "success"
    assert done["response_text"] == "done: summarise"
    assert done["error_text"] == ""
    assert done["finished_at"].endswith("Z")


async def test_failed_run_is_recorded(
    client: httpx.AsyncClient, server: ServerHandle, executor: GatedExecutor
) -> None:
    executor.gate.set()
    task_id = await _task(client, "please fail")
    await client.post(f"/api/tasks/{task_id}/run")
    await _idle(server)
    [run] = (await client.get(f"/api/tasks/{task_id}/runs")).json()["runs"]
    assert (run["status"], run["error_text"]) == ("failed", "the agent gave up")


async def test_runs_paging(
    client: httpx.AsyncClient, server: ServerHandle, executor: GatedExecutor
) -> None:
    executor.gate.set()
    task_id = await _task(client)
    ids = []
    for _ in range(5):
        ids.append((await client.post(f"/api/tasks/{task_id}/run")).json()["run_id"])
        await _idle(server)
    first = (await client.get(f"/api/tasks/{task_id}/runs", params={"limit": "2"})).json()
    assert [r["id"] for r in first["runs"]] == ids[:-3:-1]
    assert first["next_cursor"] == ids[3]
    rest = (
        await client.get(
            f"/api/tasks/{task_id}/runs", params={"limit": "10", "cursor": first["next_cursor"]}
        )
    ).json()
    assert [r["id"] for r in rest["runs"]] == ids[2::-1]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("method", "path", "status", "text"),
    [
        ("GET", "/api/tasks/999/runs", 404, "task not found"),
        ("GET", "/api/tasks/x/runs", 400, "invalid task id"),
        ("GET", "/api/tasks/1/runs?limit=0", 400, "invalid limit"),
        ("GET", "/api/tasks/1/runs?cursor=no", 400, "invalid cursor"),
        ("POST", "/api/tasks/999/run", 404, "task not found"),
        ("POST", "/api/tasks/x/run", 400, "invalid task id"),
    ],
)
async def test_run_errors(
    client: httpx.AsyncClient, method: str, path: str, status: int, text: str
) -> None:
    await _task(client)
    response = await client.request(method, path)
    assert (response.status_code, response.text) == (status, text + "\n")
