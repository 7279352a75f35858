"""Graceful shutdown (SPEC A.3): a real ``loop-server serve`` process on SIGTERM and SIGINT,
and what in-process servers owe their HTTP clients when ``shutdown()`` comes.

While a scheduled job and a chat run hang in their containers (the claude stub's
``STUB:HANG``) and clients watch ``/api/ws`` (on the listener's fast path, and on a reused
keep-alive connection, which hypercorn serves), the signal must: close the event sockets with
1001 "server shutting down", record the job ``failed`` / ``cancelled: shutdown``, stop the chat
run ("Run stopped."), remove both containers, and exit 0 within the graceful timeout — also
when the signal comes again while shutdown is under way.

The signal tests need the Docker engine and the ``loop-test`` image (skip loudly without,
fail under ``LOOP_REQUIRE_DOCKER=1``). Rules as in ``_process.py``; waiting for a container to
run polls the engine (an external process with no event to wait on) under a deadline.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from loop_server.containers import CHANNEL_LABEL
from loop_server.runtime import ServerHandle, run_server
from tests.conftest import STUB_CLAUDE, TEST_IMAGE, add_channels, create_channel, make_config
from tests.events.events_helpers import (
    RawClient,
    client_frame,
    connect_ws,
    raw_connect,
    read_http_response,
)
from tests.hardening._process import (
    CLI,
    serve_args,
    serve_process,
    server_env,
    unreachable_docker,
)
from tests.hardening._websocket import open_upgrade

# Long on purpose: shutdown must not *wait for* this deadline (nothing may hold it up), and a
# bound this far above a normal exit (about a second) cannot flake on a loaded machine.
GRACEFUL_TIMEOUT = 45.0


def _containers(client: docker.DockerClient, channel_id: str, **filters: str) -> list[Any]:
    return list(
        client.containers.list(
            all=True, filters={"label": f"{CHANNEL_LABEL}={channel_id}", **filters}
        )
    )


@contextlib.contextmanager
def _removed_afterwards(client: docker.DockerClient, channels: list[str]) -> Iterator[None]:
    """Whatever the test finds, leave no container of its channels behind."""
    try:
        yield
    finally:
        for channel_id in channels:
            for container in _containers(client, channel_id):
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)


async def _wait_running(client: docker.DockerClient, channel_id: str) -> None:
    # The engine is another process with no event to wait on: poll it (under the caller's
    # deadline).
    while True:
        if await trio.to_thread.run_sync(lambda: _containers(client, channel_id, status="running")):
            return
        await trio.sleep(0.1)


async def _keep_alive_events_socket(port: int) -> RawClient:
    """An events socket on a connection that already carried a request, so hypercorn (not the
    listener's fast path) serves it."""
    client, _ = await open_upgrade(port, "/api/ws", reuse=True)
    assert client.status == 101, client.head
    return client


def _read_outcome(db_path: Path, task_id: int, channel_id: str) -> tuple[list[Any], list[str]]:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        runs = db.execute(
            "SELECT status, error_text, finished_at IS NOT NULL FROM task_run_logs"
            " WHERE task_id = ?",
            (task_id,),
        ).fetchall()
        bot = db.execute(
            "SELECT content FROM messages WHERE channel_id = ? AND is_bot = 1 ORDER BY id",
            (channel_id,),
        ).fetchall()
    return runs, [content for (content,) in bot]


@pytest.mark.usefixtures("loop_test_image")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_shuts_down_gracefully(
    signum: signal.Signals, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    data_dir = tmp_path / "data"
    env = server_env(
        tmp_path,
        LOOP_CONTAINER_IMAGE=TEST_IMAGE,
        LOOP_CLAUDE_BIN=STUB_CLAUDE,
        LOOP_CONTAINER_NETWORK="none",
        LOOP_GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT),
    )
    channels: list[str] = []  # their containers are removed afterwards, whatever happens
    with _removed_afterwards(docker_client, channels), trio.fail_after(120):
        async with (
            serve_process([*CLI, *serve_args(data_dir)], env) as server,
            httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        ):
            chat = await create_channel(http, "hang-chat")
            channels.append(chat)
            task_channel, task_id = await _hanging_task(http)
            channels.append(task_channel)
            async with (
                connect_ws(server.port, "/api/ws") as fast,
                await _keep_alive_events_socket(server.port) as fallback,
                await raw_connect(server.port, "/api/ws") as holder,
            ):
                started = await http.post(f"/api/tasks/{task_id}/run")
                assert started.status_code == 202
                # The run answers in a thread of its own: its container is the thread's.
                run_thread = await _run_thread(fast, task_channel)
                channels.append(run_thread)
                posted = await http.post(
                    "/api/messages", json={"channel_id": chat, "content": "STUB:HANG"}
                )
                assert posted.status_code == 204
                for channel_id in (chat, run_thread):
                    await _wait_running(docker_client, channel_id)
                runs = (await http.get(f"/api/tasks/{task_id}/runs")).json()["runs"]
                assert [r["status"] for r in runs] == ["running"]

                signalled_at = trio.current_time()
                server.send_signal(signum)
                with pytest.raises(ConnectionClosed) as closed:
                    while True:  # events of the runs may come first
                        await fast.get_message()
                reason = closed.value.reason
                assert reason is not None
                assert (reason.code, reason.reason) == (1001, "server shutting down")
                _, code, text = await fallback.receive_until_close()
                assert (code, text) == (1001, "server shutting down")
                await fallback.send(client_frame(0x8, struct.pack("!H", 1001)))
                _, code, text = await holder.receive_until_close()
                assert (code, text) == (1001, "server shutting down")
                # Shutdown waits for this socket's close reply: signal again meanwhile (as
                # systemd does to every process of a unit). It must change nothing.
                server.send_signal(signum)
                await server.wait_for_log(rb"again; already shutting down")
                await holder.send(client_frame(0x8, struct.pack("!H", 1001)))
            returncode = await server.wait()
            elapsed = trio.current_time() - signalled_at
        assert returncode == 0, server.log_text()
        assert elapsed < GRACEFUL_TIMEOUT, f"exit took {elapsed:.1f}s"
        for channel_id in channels:
            left = await trio.to_thread.run_sync(_containers, docker_client, channel_id)
            assert left == [], f"containers of {channel_id} left behind"
    runs, _ = _read_outcome(data_dir / "loop.db", task_id, task_channel)
    assert runs == [("failed", "cancelled: shutdown", 1)]
    _, chat_replies = _read_outcome(data_dir / "loop.db", task_id, chat)
    assert chat_replies == ["Run stopped."]
    assert "Traceback" not in server.log_text(), server.log_text()


async def _run_thread(events: WebSocketConnection, channel_id: str) -> str:
    """The id of the thread a run of a task of ``channel_id`` answers in (its
    ``channel.created`` event)."""
    while True:
        event = json.loads(await events.get_message())
        if event["type"] == "channel.created" and event["channel_id"] == channel_id:
            return str(event["data"]["channel_id"])


async def _hanging_task(http: httpx.AsyncClient) -> tuple[str, int]:
    """A channel and a task in it whose run never ends; (channel id, task id)."""
    created = await http.post("/api/channels/create", json={"name": "hang-task"})
    channel_id: str = created.json()["channel_id"]
    task = await http.post(
        "/api/tasks",
        json={
            "channel_id": channel_id,
            "schedule": "1h",
            "type": "interval",
            "prompt": "STUB:HANG",
        },
    )
    assert task.status_code == 201, task.text
    task_id: int = task.json()["id"]
    return channel_id, task_id


# -- HTTP connections at shutdown (in-process, no Docker) ------------------------------------


async def _start(
    nursery: trio.Nursery, tmp_path: Path, graceful: float, **overrides: object
) -> tuple[Any, trio.Event]:
    """A server and an event set once ``run_server`` has returned."""
    finished = trio.Event()

    async def run(task_status: trio.TaskStatus[ServerHandle]) -> None:
        try:
            await run_server(
                make_config(tmp_path, graceful_timeout=graceful, **overrides),
                task_status=task_status,
            )
        finally:
            finished.set()

    with trio.fail_after(10):
        handle = await nursery.start(run)
    return handle, finished


# /api/health is answered by the lean path, /api/readme by its Quart view.
@pytest.mark.parametrize("path", ["/api/health", "/api/readme"])
async def test_idle_keep_alive_connection_does_not_hold_shutdown(
    nursery: trio.Nursery, tmp_path: Path, path: str
) -> None:
    """A client's pooled, idle connection is closed at once, not waited for. (It used to
    hold shutdown for the whole graceful timeout: the shield in api/_gateway.py says why.)"""
    server, finished = await _start(nursery, tmp_path, graceful=60)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get(path)).status_code == 200
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            head, _ = await read_http_response(stream)
            assert head.startswith(b"HTTP/1.1 200")
            with trio.fail_after(5):
                server.shutdown()
                assert await stream.receive_some(1024) == b""  # closed by the server
                await finished.wait()


async def _post_big_history(server: Any, channel_id: str, messages: int = 16) -> None:
    """By default, enough history that one page (limit 200) is larger than both socket buffers
    together."""
    await add_channels(server, channel_id)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for _ in range(messages):
            posted = await http.post(
                "/api/messages", json={"channel_id": channel_id, "content": "x" * 600_000}
            )
            assert posted.status_code == 204


async def _request_page_and_stall(port: int, channel_id: str) -> tuple[trio.SocketStream, bytes]:
    """Ask for a big page on a socket with a tiny receive buffer, read its first bytes (which
    are returned with the stream), then read no more."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    await stream.send_all(
        (
            f"GET /api/channels/{channel_id}/messages?limit=200 HTTP/1.1\r\nHost: localhost\r\n\r\n"
        ).encode()
    )
    first = await stream.receive_some(1024)
    assert first  # the answer has started; now it stalls
    return stream, first


async def test_client_that_stops_reading_does_not_hold_shutdown(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """hypercorn shields its socket writes from cancellation; the listener's write guard cuts
    them at the graceful deadline (serving/_write_guard.py)."""
    graceful = 1.0
    server, finished = await _start(nursery, tmp_path, graceful=graceful)
    await _post_big_history(server, "big")
    stream, _ = await _request_page_and_stall(server.port, "big")
    async with stream:
        t0 = trio.current_time()
        server.shutdown()
        # Without the write guard shutdown waits forever for this client; with it, it ends at
        # the 1 s deadline. 30 s tells the two apart however loaded the machine is.
        with trio.move_on_after(graceful + 30):
            await finished.wait()
        took = trio.current_time() - t0
        in_time = finished.is_set()
        # The server gave up on the response: the client, reading now, finds it cut short.
        received = 0
        with trio.fail_after(10):
            while data := await _receive_or_empty(stream):
                received += len(data)
    with trio.fail_after(10):
        await finished.wait()
    assert in_time, f"shutdown waited {took:.1f} s for a client that does not read"
    assert received < 16 * 600_000


async def _receive_or_empty(stream: trio.SocketStream) -> bytes:
    try:
        return await stream.receive_some(65536)
    except trio.BrokenResourceError:  # reset by the server
        return b""


async def test_client_that_stops_reading_is_closed_after_the_write_timeout(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A response stuck on a client that reads nothing for ``http_write_timeout`` is dropped,
    and the server goes on answering everyone else."""
    server, _ = await _start(nursery, tmp_path, graceful=5, http_write_timeout=1.0)
    await _post_big_history(server, "big")
    stream, _ = await _request_page_and_stall(server.port, "big")
    async with stream:
        await trio.sleep(2.5)  # the client really does read nothing for longer than the timeout
        received = 0
        with trio.fail_after(10):
            while data := await _receive_or_empty(stream):
                received += len(data)
        assert received < 16 * 600_000, "the whole response was sent to a client that stalled"
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/api/health")).status_code == 200


async def test_client_that_reads_slowly_gets_the_whole_response(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The write timeout measures progress, not the length of a response: a client that keeps
    reading, if slowly, is not cut off even when the whole answer takes longer than it."""
    server, _ = await _start(nursery, tmp_path, graceful=5, http_write_timeout=0.5)
    await _post_big_history(server, "big", messages=3)
    stream, buffered = await _request_page_and_stall(server.port, "big")
    async with stream:
        t0 = trio.current_time()
        with trio.fail_after(60):
            while b"\r\n\r\n" not in buffered:
                data = await stream.receive_some(65536)
                assert data, "the server closed the connection before the response's head"
                buffered += data
            raw_head, _, rest = buffered.partition(b"\r\n\r\n")
            lengths = [
                int(line.partition(b":")[2])
                for line in raw_head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            assert lengths, raw_head
            body_length, received = lengths[0], len(rest)
            while received < body_length:
                await trio.sleep(0.02)  # a slow reader: a few KiB every 0.02 s
                data = await stream.receive_some(256 * 1024)
                assert data, "the server closed a connection that was being read"
                received += len(data)
        took = trio.current_time() - t0
    assert received == body_length
    assert took > 0.5, "the response did not outlast the write timeout; the test proves nothing"


@pytest.mark.parametrize("again", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_repeated_signal_does_not_cut_shutdown_short(
    tmp_path: Path, again: signal.Signals
) -> None:
    env = server_env(tmp_path, LOOP_GRACEFUL_TIMEOUT="10", DOCKER_HOST=unreachable_docker(tmp_path))
    async with serve_process([*CLI, *serve_args(tmp_path / "data")], env) as server:
        with trio.fail_after(20):
            async with await raw_connect(server.port, "/api/ws") as client:
                server.send_signal(signal.SIGTERM)
                _, code, _ = await client.receive_until_close()
                assert code == 1001
                # Shutdown is under way and waits for our close reply.
                server.send_signal(again)
                await server.wait_for_log(rb"again; already shutting down")
                await client.send(client_frame(0x8, struct.pack("!H", 1001)))
            assert await server.wait() == 0, server.log_text()


async def test_terminal_sockets_close_with_1001(nursery: trio.Nursery, tmp_path: Path) -> None:
    """Like the events sockets: 1001 "server shutting down", fast path and fallback."""
    server, finished = await _start(nursery, tmp_path, graceful=60)
    with trio.fail_after(10):
        clients = []
        for reuse in (False, True):
            client, _ = await open_upgrade(server.port, "/api/ws/terminal", reuse=reuse)
            # The endpoint exists: a 404 or 501 here is a regression, not a reason to skip.
            assert client.status == 101, client.head
            clients.append(client)
        server.shutdown()
        for client in clients:
            async with client:
                _, code, reason = await client.receive_until_close()
                assert (code, reason) == (1001, "server shutting down")
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await client.send(client_frame(0x8, struct.pack("!H", 1001)))
        await finished.wait()
