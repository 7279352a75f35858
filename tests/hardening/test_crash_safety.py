"""Crash safety: every write the server acknowledged survives ``SIGKILL``.

A real ``loop-server serve`` process on a temp data dir takes concurrent writes — user messages
(``POST /api/messages`` → 204) and tasks (``POST /api/tasks`` → 201) — and is killed with
``SIGKILL`` while requests are still in flight. Restarted on the same data dir, it must answer
with every acknowledged write (messages by content in their channel's history, exactly once;
tasks by id), and the database must pass ``PRAGMA integrity_check``. The server group-commits
concurrent writes (several share one transaction and fsync); its health report must show that
it did, so the test proves crash safety *with* shared commits. Two rounds: the second
crash hits a database that is itself recovering from the first.

Agent runs (one per message) fail at once: ``DOCKER_HOST`` points at a socket nobody listens
on, so each also writes its error bot message — more concurrent writes, no containers.
Rules as in ``_process.py``.
"""

from __future__ import annotations

import signal
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio

from tests.conftest import create_channel
from tests.hardening._process import (
    CLI,
    ServerProcess,
    serve_args,
    serve_process,
    server_env,
    unreachable_docker,
)

CHANNEL_NAMES = ("crash-a", "crash-b", "crash-c")
WORKERS = 8
#: Acknowledged writes per round before the kill (the kill then lands mid-stream).
ACKS_BEFORE_KILL = 240
#: Bound on each worker's requests per round, whatever happens.
MAX_REQUESTS_PER_WORKER = 2000


@dataclass
class Acknowledged:
    channels: list[str] = field(default_factory=list)  # made over REST in the first round
    messages: dict[str, str] = field(default_factory=dict)  # content → channel
    tasks: dict[int, str] = field(default_factory=dict)  # task id → channel
    in_flight: int = 0
    in_flight_at_kill: int = 0
    largest_batch: int = 0  # most writes one commit carried, as the server reported it

    @property
    def count(self) -> int:
        return len(self.messages) + len(self.tasks)


async def _worker(
    http: httpx.AsyncClient, round_no: int, worker: int, acked: Acknowledged, enough: trio.Event
) -> None:
    """Alternate messages and tasks until the server is gone."""
    for n in range(MAX_REQUESTS_PER_WORKER):
        channel = acked.channels[(worker + n) % len(acked.channels)]
        acked.in_flight += 1
        try:
            if n % 3 == 2:
                body = {
                    "channel_id": channel,
                    "schedule": "1h",
                    "type": "interval",
                    "prompt": f"r{round_no} w{worker} task {n}",
                }
                response = await http.post("/api/tasks", json=body)
                if response.status_code == 201:
                    acked.tasks[response.json()["id"]] = channel
            else:
                content = f"r{round_no} w{worker} message {n}"
                response = await http.post(
                    "/api/messages", json={"channel_id": channel, "content": content}
                )
                if response.status_code == 204:
                    acked.messages[content] = channel
        except httpx.TransportError:
            return  # the server was killed: this request was never acknowledged
        finally:
            acked.in_flight -= 1
        assert response.status_code in (201, 204), response.text
        if acked.count >= ACKS_BEFORE_KILL:
            enough.set()


async def _load_then_kill(server: ServerProcess, round_no: int, acked: Acknowledged) -> None:
    enough = trio.Event()
    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http,
        trio.open_nursery() as nursery,
    ):
        if not acked.channels:
            acked.channels = [await create_channel(http, name) for name in CHANNEL_NAMES]
        for worker in range(WORKERS):
            nursery.start_soon(_worker, http, round_no, worker, acked, enough)
        await enough.wait()
        health = (await http.get("/api/health")).json()
        acked.largest_batch = max(acked.largest_batch, health["store"]["largest_batch"])
        acked.in_flight_at_kill = acked.in_flight
        server.send_signal(signal.SIGKILL)
        assert await server.wait() == -signal.SIGKILL


async def _history(http: httpx.AsyncClient, channel: str) -> list[str]:
    """Every user message of ``channel``, paging back through the whole history."""
    contents: list[str] = []
    cursor = None
    for _ in range(1000):
        params: dict[str, str | int] = {"limit": 200}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await http.get(f"/api/channels/{channel}/messages", params=params)).json()
        contents += [m["content"] for m in page["messages"] if not m["is_bot"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return contents
    raise AssertionError("history did not end")


async def _check(server: ServerProcess, acked: Acknowledged) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for channel in acked.channels:
            stored = await _history(http, channel)
            wanted = [c for c, ch in acked.messages.items() if ch == channel]
            lost = [c for c in wanted if c not in stored]
            assert not lost, f"{len(lost)} acknowledged message(s) lost in {channel}: {lost[:5]}"
            doubled = [c for c in wanted if stored.count(c) != 1]
            assert not doubled, f"stored more than once: {doubled[:5]}"
            listed = (await http.get("/api/tasks", params={"channel_id": channel})).json()
            ids = {task["id"] for task in listed}
            lost_tasks = [t for t, ch in acked.tasks.items() if ch == channel and t not in ids]
            assert not lost_tasks, f"acknowledged task(s) lost in {channel}: {lost_tasks}"
        for task_id in list(acked.tasks)[:: max(1, len(acked.tasks) // 10)]:
            assert (await http.get(f"/api/tasks/{task_id}")).status_code == 200


# The kill cuts httpx's requests mid-body; the client objects it leaves half-finished may be
# collected with a ResourceWarning (seen under load), which says nothing about the server.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = server_env(tmp_path, DOCKER_HOST=unreachable_docker(tmp_path))
    argv = [*CLI, *serve_args(data_dir)]
    acked = Acknowledged()
    with trio.fail_after(120):
        for round_no in (1, 2):
            async with serve_process(argv, env) as server:
                await _load_then_kill(server, round_no, acked)
            assert acked.in_flight_at_kill > 0, "the kill should land while requests are open"
        async with serve_process(argv, env) as server:
            await _check(server, acked)
            server.send_signal(signal.SIGTERM)
            assert await server.wait() == 0, server.log_text()
    assert len(acked.messages) >= ACKS_BEFORE_KILL // 2
    # The writes really were group-committed: some commits carried several of them.
    assert acked.largest_batch > 1
    assert acked.tasks
    with sqlite3.connect(data_dir / "loop.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
