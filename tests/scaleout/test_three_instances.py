"""Three instances on one PostgreSQL and one Redis (issue 14's "done means").

* Messages posted round-robin to the three arrive on every subscriber of every instance, in one
  order, with no gap or duplicate in ``seq``; their agent runs take turns in the channel.
* SIGKILL of one instance mid-load loses no acknowledged write, and its subscribers, reconnecting
  with ``?since=`` to another instance, get a complete replay.
* 1,000 tasks due at once fire exactly once each, whichever instance claims them.

Real processes (``cluster``), real servers (``tests/services``), loopback only.
"""

from __future__ import annotations

import itertools
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trio

from tests.conftest import create_channel
from tests.hardening._process import ServerProcess
from tests.scaleout.cluster import (
    Subscriber,
    assert_contiguous,
    cluster,
    events_url,
    psql,
)
from tests.services.servers import PostgresServer

WRITERS = 6
DEADLINE = 120


async def _post(http: httpx.AsyncClient, channel: str, content: str) -> bool:
    """True once the server acknowledged the message (204); False if the server was gone."""
    try:
        response = await http.post(
            "/api/messages", json={"channel_id": channel, "content": content}
        )
    except httpx.TransportError:
        return False
    assert response.status_code == 204, response.text
    return True


async def _history(http: httpx.AsyncClient, channel: str) -> list[str]:
    contents: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 200}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await http.get(f"/api/channels/{channel}/messages", params=params)).json()
        contents += [m["content"] for m in page["messages"] if not m["is_bot"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return contents


def _clients(servers: list[ServerProcess]) -> list[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=WRITERS, max_keepalive_connections=WRITERS)
    return [httpx.AsyncClient(base_url=s.url, timeout=30, limits=limits) for s in servers]


async def test_messages_posted_round_robin_reach_every_subscriber_of_every_instance(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    total = 150
    with trio.fail_after(DEADLINE):
        async with cluster(tmp_path, postgres_url, redis_url) as servers:
            clients = _clients(servers)
            try:
                channel = await create_channel(clients[0], "fan")
                subscribers = [
                    Subscriber(f"instance-{n} sub-{k}") for n in range(3) for k in range(2)
                ]
                async with trio.open_nursery() as nursery:
                    for sub in subscribers:
                        server = servers[int(sub.name.split()[0].rsplit("-", 1)[1])]
                        await nursery.start(sub.run, events_url(server))
                    epochs = {sub.hello["epoch"] for sub in subscribers}
                    assert len(epochs) == 1, f"instances disagree on the epoch: {epochs}"

                    posted: list[str] = []
                    counter = itertools.count()

                    async def writer() -> None:
                        while (n := next(counter)) < total:
                            content = f"round-robin {n}"
                            assert await _post(clients[n % 3], channel, content)
                            posted.append(content)

                    async with trio.open_nursery() as writers:
                        for _ in range(WRITERS):
                            writers.start_soon(writer)
                    for sub in subscribers:
                        await sub.wait_for_contents(set(posted))
                    await subscribers[0].wait_for_runs(3)
                    nursery.cancel_scope.cancel()
            finally:
                for client in clients:
                    await client.aclose()

    assert len(posted) == total
    reference = subscribers[0]
    for sub in subscribers:
        assert_contiguous(sub, sub.hello["seq"])
        contents = sub.user_contents()
        assert sorted(contents) == sorted(posted), sub.name  # each exactly once
        # One order everywhere: on the seqs two subscribers share, the same event.
        mine = {e["seq"]: (e["type"], e["data"]) for e in sub.events}
        theirs = {e["seq"]: (e["type"], e["data"]) for e in reference.events}
        shared = mine.keys() & theirs.keys()
        assert len(shared) >= total
        assert all(mine[s] == theirs[s] for s in shared), sub.name
    # Every message started an agent run (failing at once: no Docker) on the instance it was
    # posted to; the channel's turns let one run at a time go on across the three.
    statuses = reference.agent_statuses()
    assert statuses.count("running") >= 3, statuses
    overlapping = [i for i, (a, b) in enumerate(itertools.pairwise(statuses)) if a == b]
    assert not overlapping, f"runs overlapped in one channel: {statuses[:20]}"


# The kill cuts requests mid-body; half-finished client objects may be collected with a
# ResourceWarning, which says nothing about the servers.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_sigkill_of_one_instance_loses_nothing_and_replay_elsewhere_is_complete(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    before_kill, after_kill = 120, 60
    with trio.fail_after(DEADLINE):
        async with cluster(tmp_path, postgres_url, redis_url) as servers:
            clients = _clients(servers)
            try:
                channel = await create_channel(clients[0], "kill")
                victim = servers[2]
                watchers = [Subscriber(f"victim sub-{k}") for k in range(2)]
                survivor = Subscriber("instance-0 sub")
                acked: list[str] = []
                async with trio.open_nursery() as nursery:
                    for sub in watchers:
                        await nursery.start(sub.run, events_url(victim))
                    await nursery.start(survivor.run, events_url(servers[0]))
                    counter = itertools.count()
                    killed = trio.Event()

                    async def writer() -> None:
                        while (n := next(counter)) < before_kill + after_kill:
                            target = n % 3 if not killed.is_set() else n % 2
                            if await _post(clients[target], channel, f"kill {n}"):
                                acked.append(f"kill {n}")
                            if len(acked) >= before_kill and not killed.is_set():
                                killed.set()
                                victim.send_signal(signal.SIGKILL)

                    async with trio.open_nursery() as writers:
                        for _ in range(WRITERS):
                            writers.start_soon(writer)
                    assert await victim.wait() == -signal.SIGKILL
                    for sub in watchers:
                        while not sub.closed:
                            await sub.changed.wait()
                    await survivor.wait_for_contents(set(acked))

                    # The victim's subscribers come back on instance 1, from where they were.
                    resumed = []
                    for sub in watchers:
                        last = sub.events[-1]["seq"] if sub.events else sub.hello["seq"]
                        again = Subscriber(sub.name + " resumed")
                        url = events_url(servers[1], since=last, epoch=sub.hello["epoch"])
                        await nursery.start(again.run, url)
                        assert again.hello["epoch"] == sub.hello["epoch"]
                        resumed.append((sub, again, last))
                    for sub, again, _ in resumed:
                        await again.wait_for_contents(set(acked) - set(sub.user_contents()))
                    stored = await _history(clients[1], channel)
                    nursery.cancel_scope.cancel()
            finally:
                for client in clients:
                    await client.aclose()

    lost = [c for c in acked if c not in stored]
    assert not lost, f"{len(lost)} acknowledged message(s) lost: {lost[:5]}"
    assert len(stored) == len(set(stored)), "a message was stored twice"
    for sub, again, last in resumed:
        assert_contiguous(sub, sub.hello["seq"])
        assert again.events and again.events[0]["seq"] == last + 1, "replay did not start at since"
        assert_contiguous(again, last)
        seen = sub.user_contents() + again.user_contents()
        assert set(acked) <= set(seen), sub.name
        assert len(seen) == len(set(seen)), f"{sub.name}: an event came twice across the resume"


async def test_a_thousand_tasks_due_at_once_fire_exactly_once_each(
    tmp_path: Path, postgres_server: PostgresServer, postgres_url: str, redis_url: str
) -> None:
    count = 1000
    # 700 tasks fall due at the same instant: exactly-once under contention. Whichever
    # instance polls first after it may claim that whole burst, so the other 300 fall due one
    # by one, 37 ms apart (not a divisor of the 0.2 s poll), over 11 s: each is claimed by the
    # first instance to poll after it, and the instances' polls interleave. Only an instance
    # that never claims anything in those 11 s leaves one instance with every run.
    burst, step = 700, timedelta(milliseconds=37)
    with trio.fail_after(DEADLINE * 2):
        async with cluster(tmp_path, postgres_url, redis_url, poll_interval=0.2) as servers:
            clients = _clients(servers)
            try:
                channel = await create_channel(clients[0], "due")
                at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
                counter = itertools.count()

                def due(n: int) -> str:
                    when = at if n < burst else at + timedelta(seconds=1) + (n - burst) * step
                    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

                async def creator() -> None:
                    while (n := next(counter)) < count:
                        body = {
                            "channel_id": channel,
                            "type": "once",
                            "schedule": due(n),
                            "prompt": f"due {n}",
                        }
                        response = await clients[n % 3].post("/api/tasks", json=body)
                        assert response.status_code == 201, response.text

                async with trio.open_nursery() as nursery:
                    for _ in range(WRITERS):
                        nursery.start_soon(creator)
                # Every task fired and finished (once-tasks are disabled after their run).
                while True:
                    open_runs = psql(
                        postgres_server,
                        postgres_url,
                        "SELECT count(*) FROM scheduled_tasks WHERE enabled <> 0",
                    )
                    if open_runs == "0":
                        break
                    await trio.sleep(0.5)
                per_task = psql(
                    postgres_server,
                    postgres_url,
                    "SELECT count(*), count(DISTINCT task_id) FROM task_run_logs"
                    " WHERE status <> 'skipped'",
                )
                outcomes = psql(
                    postgres_server,
                    postgres_url,
                    "SELECT status, error_text, count(*) FROM task_run_logs GROUP BY 1, 2",
                )
                by_instance = psql(
                    postgres_server,
                    postgres_url,
                    "SELECT count(DISTINCT instance_id) FROM task_run_logs",
                )
                alive = [s.returncode for s in servers]
            finally:
                for client in clients:
                    await client.aclose()

    runs, tasks = (int(x) for x in per_task.split("|"))
    assert tasks == count, f"{count - tasks} task(s) never fired"
    assert runs == count, f"{runs - count} task(s) fired more than once; runs: {outcomes}"
    assert int(by_instance) > 1, "one instance took every task: the lease was not shared"
    assert alive == [None, None, None]
