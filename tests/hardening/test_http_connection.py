"""How our connections' HTTP/1.1 differs from stock hypercorn's (serving/_handover.py): each
answer in one write, and a keep-alive timer that starts no task per request
(serving/_keep_alive.py) but closes idle connections as hypercorn's does.

Rules: 127.0.0.1, port 0; every wait under an absolute deadline; the timer's own tests run on
Trio's autojump clock, so no test sleeps for real.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import trio
import trio.testing
from hypercorn.trio.worker_context import EventWrapper

from loop_server.events import EventsHub
from loop_server.serving import EventsEndpoint, serve
from loop_server.serving._keep_alive import KeepAliveTimer
from loop_server.serving._prefixed_stream import PrefixedStream
from tests.events.events_helpers import allow_all, make_app, read_http_response
from tests.terminal.terminal_helpers import hypercorn_config

DEADLINE = 10
KEEP_ALIVE = 0.5


# -- the timer on its own ----------------------------------------------------------------------


@dataclass
class Timed:
    timer: KeepAliveTimer
    terminated: EventWrapper
    expired: list[float]
    task_group: SimpleNamespace


@pytest.fixture
async def timed(nursery: trio.Nursery) -> AsyncIterator[Timed]:
    terminated = EventWrapper()
    expired: list[float] = []

    async def expire() -> None:
        expired.append(trio.current_time())

    timer = KeepAliveTimer(5.0, terminated, expire)
    yield Timed(timer, terminated, expired, SimpleNamespace(_nursery=nursery))
    timer.close()


async def test_an_idle_connection_expires_after_the_timeout(
    timed: Timed, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    await timed.timer.restart(timed.task_group, None)
    await trio.sleep(4.9)
    assert timed.expired == []
    await trio.sleep(0.2)
    assert timed.expired == [pytest.approx(start + 5.0)]


async def test_a_request_in_flight_is_never_expired_and_the_next_idle_time_counts_anew(
    timed: Timed, autojump_clock: trio.testing.MockClock
) -> None:
    await timed.timer.restart(timed.task_group, None)
    await trio.sleep(3)
    await timed.timer.stop()  # a request arrives
    await trio.sleep(60)
    assert timed.expired == []
    await timed.timer.restart(timed.task_group, None)  # answered: idle again
    idle_from = trio.current_time()
    await trio.sleep(10)
    assert timed.expired == [pytest.approx(idle_from + 5.0)]


async def test_terminating_closes_an_idle_connection_at_once(
    timed: Timed, autojump_clock: trio.testing.MockClock
) -> None:
    await timed.timer.restart(timed.task_group, None)
    await trio.sleep(1)
    at = trio.current_time()
    await timed.terminated.set()
    await trio.sleep(0.01)
    assert timed.expired == [pytest.approx(at)]


async def test_terminating_waits_for_the_request_in_flight(
    timed: Timed, autojump_clock: trio.testing.MockClock
) -> None:
    await timed.timer.restart(timed.task_group, None)
    await timed.timer.stop()
    await timed.terminated.set()
    await trio.sleep(30)
    assert timed.expired == []  # the request still runs
    at = trio.current_time()
    await timed.timer.restart(timed.task_group, None)  # its answer is out
    await trio.sleep(0.01)
    assert timed.expired == [pytest.approx(at)]


async def test_close_ends_the_watcher_without_expiring(
    timed: Timed, autojump_clock: trio.testing.MockClock
) -> None:
    await timed.timer.restart(timed.task_group, None)
    timed.timer.close()
    await trio.sleep(60)
    assert timed.expired == []


# -- on the wire ------------------------------------------------------------------------------


@pytest.fixture
async def port(nursery: trio.Nursery) -> AsyncIterator[int]:
    hub = EventsHub()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = hypercorn_config()
    config.keep_alive_timeout = KEEP_ALIVE
    shutdown = trio.Event()
    await nursery.start(
        lambda task_status: serve(
            make_app(),
            config,
            [sock],
            EventsEndpoint(hub, allow_all, max_message_size=1000, close_timeout=DEADLINE),
            shutdown_trigger=shutdown.wait,
            task_status=task_status,
        )
    )
    yield sock.getsockname()[1]
    shutdown.set()


async def read_head(stream: trio.SocketStream) -> bytes:
    buffer = b""
    while not buffer.endswith(b"\r\n\r\n"):
        data = await stream.receive_some(1 << 16)
        assert data, "closed before the head"
        buffer += data
    return buffer


async def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(port: int) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        with trio.fail_after(DEADLINE):
            for _ in range(3):  # each answer re-arms the timer
                await stream.send_all(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                head, body = await read_http_response(stream)
                assert head.startswith(b"HTTP/1.1 200 OK") and body == b"hello"
            idle_from = trio.current_time()
            assert await stream.receive_some(1024) == b""  # closed by the server
        assert trio.current_time() - idle_from >= KEEP_ALIVE * 0.9


async def test_each_answer_is_written_in_one_send(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hypercorn alone writes head, body and an empty end in three writes."""
    writes: list[bytes] = []
    original = PrefixedStream.send_all

    async def recording(self: PrefixedStream, data: bytes | bytearray | memoryview) -> None:
        writes.append(bytes(data))
        await original(self, data)

    monkeypatch.setattr(PrefixedStream, "send_all", recording)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        with trio.fail_after(DEADLINE):
            for request, body in (
                (b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"hello"),
                (b"HEAD /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b""),
                (b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\nhi", b"hi"),
            ):
                writes.clear()
                await stream.send_all(request)
                if request.startswith(b"HEAD"):  # its Content-Length is GET's: no body read
                    head = await read_head(stream)
                    received = b""
                else:
                    head, received = await read_http_response(stream)
                assert head.startswith(b"HTTP/1.1 200 OK")
                assert received == body
                assert len(writes) == 1, writes
                assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
                assert writes[0].endswith(b"\r\n\r\n" + body)
