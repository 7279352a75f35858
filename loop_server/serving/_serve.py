"""The listener: hypercorn for HTTP, our own fast path for the events and terminal WebSockets.

hypercorn's ``worker_serve`` accepts connections and gives each to a ``TCPServer``. This is the
same loop built from the same pieces (lifespan, worker context, ``TCPServer``, graceful
timeout) with one step added in front: the first bytes of each connection are looked at, and a
``GET /api/ws`` (or ``GET /api/ws/terminal``) is served here, straight on the socket, instead
of through the ASGI layers that cost most of each delivery (DESIGN §4; for the terminal, a
keystroke's echo: docs/terminal.md). Every other connection reaches hypercorn with the bytes
already read put back in front, so it cannot tell the difference.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import repr_socket_addr, wrap_app

from loop_server.origin_policy import OriginPolicy
from loop_server.serving import _reason_phrase as reason_phrase
from loop_server.serving._agent_socket import AgentSocketApp
from loop_server.serving._asgi_fallback import EventsFallback
from loop_server.serving._events_endpoint import EventsEndpoint, serve_events_request
from loop_server.serving._prefixed_stream import PrefixedStream
from loop_server.serving._request_head import (
    ANY_ORIGIN_LINES,
    HeadError,
    Sniff,
    head_end,
    parse_head,
    plain_response,
    sniff_paths,
)
from loop_server.serving._terminal_endpoint import TerminalEndpoint, serve_terminal_request
from loop_server.serving._terminal_fallback import TerminalFallback
from loop_server.serving._write_guard import WriteGuard, cut_writes_at

logger = logging.getLogger("loop_server.serving")

_RECEIVE_SIZE = 65536


async def serve(
    asgi_app: Any,
    hyper_config: Config,
    sockets: list[socket.socket],
    events: EventsEndpoint,
    *,
    terminal: TerminalEndpoint | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]],
    write_timeout: float | None = None,
    policy: OriginPolicy | None = None,
    agent_sockets: Sequence[socket.socket] = (),
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``asgi_app`` with hypercorn, and ``events.path`` (and ``terminal.path`` when
    given) on the socket directly, on ``sockets`` (bound TCP sockets, plain HTTP; this
    function owns and closes them) until ``shutdown_trigger`` returns. ``agent_sockets``
    (bound unix sockets, owned likewise) serve ``asgi_app`` alone, marked as the agent socket's
    (``AgentSocketApp``).

    ``task_status.started()`` reports the bound addresses once listening. On shutdown: stop
    accepting, close event and terminal sockets with 1001, let hypercorn finish requests in
    flight within ``hyper_config.graceful_timeout`` (then cut the writes still stuck on clients
    that do not read), then run the ASGI lifespan shutdown. An HTTP write that makes no
    progress for ``write_timeout`` seconds closes its connection. Both WebSocket paths (here
    and the ASGI fallback) judge each upgrade by ``policy`` (None: the default rules); the rest
    is ``asgi_app``'s to judge.
    """
    policy = policy or OriginPolicy()
    if hyper_config.ssl_enabled:
        raise ValueError("serve() speaks plain HTTP only; terminate TLS in front of it")
    hyper_config.set_statsd_logger_class(StatsdLogger)
    reason_phrase.install()
    # Requests for the events path that reach hypercorn anyway (a reused keep-alive
    # connection) are answered by the fallback; everything else goes to ``asgi_app``.
    inner: Any = asgi_app if terminal is None else TerminalFallback(asgi_app, terminal, policy)
    fallback: Any = EventsFallback(inner, events, policy)
    app = wrap_app(fallback, hyper_config.wsgi_max_body_size, "asgi")
    agent_app = wrap_app(AgentSocketApp(asgi_app), hyper_config.wsgi_max_body_size, "asgi")
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(app, hyper_config, lifespan_state)
    context = WorkerContext(hyper_config.max_requests)
    writes = WriteGuard(write_timeout)

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()

        async with trio.open_nursery() as server_nursery:
            listeners: list[trio.SocketListener] = []
            agent_listeners: list[trio.SocketListener] = []
            binds: list[str] = []
            for sock in [*sockets, *agent_sockets]:
                sock.listen(hyper_config.backlog)
                listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
                (listeners if sock in sockets else agent_listeners).append(listener)
                bind = repr_socket_addr(sock.family, sock.getsockname())
                binds.append(f"http://{bind}")
                await hyper_config.log.info(f"Running on http://{bind} (CTRL + C to quit)")
            routers = [
                _Router(
                    served,
                    hyper_config,
                    context,
                    ConnectionState(lifespan_state.copy()),
                    events,
                    terminal,
                    writes,
                    policy,
                    agent_socket=agent,
                )
                for served, agent in ((app, False), (agent_app, True))
            ]
            task_status.started(binds)
            try:
                async with trio.open_nursery() as accept_nursery:
                    stop = accept_nursery.cancel_scope.cancel

                    async def stop_after(waiter: Callable[[], Awaitable[None]]) -> None:
                        await waiter()
                        stop()

                    accept_nursery.start_soon(stop_after, shutdown_trigger)
                    accept_nursery.start_soon(stop_after, context.terminate.wait)
                    for router, served_by in zip(
                        routers, (listeners, agent_listeners), strict=True
                    ):
                        if served_by:
                            accept_nursery.start_soon(
                                partial(trio.serve_listeners, handler_nursery=server_nursery),
                                router.handle,
                                served_by,
                            )
            finally:
                with trio.CancelScope(shield=True):
                    for listener in [*listeners, *agent_listeners]:
                        await listener.aclose()
                    # hypercorn's idle connections close on this; requests in flight finish.
                    await context.terminated.set()
                    if events.hub is not None:
                        events.hub.close_all()
                    if terminal is not None:
                        terminal.close_all()
                deadline = trio.current_time() + hyper_config.graceful_timeout
                server_nursery.cancel_scope.deadline = deadline
                # hypercorn's writes ignore that deadline (they are shielded); this ends them.
                # (Not in server_nursery: it would keep that nursery open until the deadline.)
                lifespan_nursery.start_soon(cut_writes_at, writes, deadline)

        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


class _Router:
    """Looks at the start of each connection and decides who serves it."""

    def __init__(
        self,
        app: Any,
        config: Config,
        context: WorkerContext,
        state: ConnectionState,
        events: EventsEndpoint,
        terminal: TerminalEndpoint | None,
        writes: WriteGuard,
        policy: OriginPolicy,
        *,
        agent_socket: bool = False,
    ) -> None:
        self._app = app
        self._policy = policy
        self._agent_socket = agent_socket
        self._writes = writes
        self._config = config
        self._context = context
        self._state = state
        self._events = events
        self._terminal = terminal
        # Paths served on the socket; the index says which endpoint.
        self._paths = [events.path.encode()]
        if terminal is not None:
            self._paths.append(terminal.path.encode())

    async def handle(self, stream: trio.SocketStream) -> None:
        if self._agent_socket:
            # No fast paths: the agent socket serves the REST API only.
            await self._serve_http(stream, b"")
            return
        events = self._events
        buffer = bytearray()
        verdict = Sniff.NEED_MORE
        which = -1
        end = -1
        with trio.move_on_after(events.head_timeout):
            while True:
                verdict, which = sniff_paths(buffer, self._paths)
                if verdict is Sniff.OTHER:
                    break
                if verdict is Sniff.EVENTS:
                    end = head_end(buffer)
                    if end >= 0:
                        break
                    if len(buffer) > events.max_head_size:
                        await _refuse(stream, 431, "Request Header Fields Too Large\n")
                        return
                try:
                    data = await stream.receive_some(_RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    await trio.aclose_forcefully(stream)
                    return
                buffer += data
        if verdict is Sniff.OTHER:
            await self._serve_http(stream, bytes(buffer))
        elif end >= 0:
            await self._serve_on_socket(stream, which, bytes(buffer[:end]), bytes(buffer[end:]))
        else:
            # Nothing decisive within the head timeout.
            await trio.aclose_forcefully(stream)

    async def _serve_http(self, stream: trio.SocketStream, head: bytes) -> None:
        # TCPServer is annotated for SSL streams but handles plain ones (see PrefixedStream).
        prefixed: Any = PrefixedStream(stream, head, self._writes)
        server = TCPServer(self._app, self._config, self._context, self._state, prefixed)
        await server.run()

    async def _serve_on_socket(
        self, stream: trio.SocketStream, which: int, raw: bytes, leftover: bytes
    ) -> None:
        try:
            head = parse_head(raw)
        except HeadError:
            await _refuse(stream, 400, "Bad Request\n")
            return
        over_tcp = stream.socket.family in (socket.AF_INET, socket.AF_INET6)
        verdict = self._policy.judge(head.headers, over_tcp=over_tcp)
        if verdict.refusal is not None:
            await _refuse(stream, 403, verdict.refusal + "\n", cors=b"")
            return
        cors = verdict.cors_lines
        kind = "events" if which == 0 else "terminal"
        try:
            if which == 0:
                await serve_events_request(stream, self._events, head, leftover, cors)
            else:
                assert self._terminal is not None
                await serve_terminal_request(stream, self._terminal, head, leftover, cors)
        except Exception:
            # One connection's bug must not take the listener (and every other one) down.
            logger.exception("%s connection failed", kind)
            await trio.aclose_forcefully(stream)


async def _refuse(
    stream: trio.SocketStream, status: int, body: str, cors: bytes = ANY_ORIGIN_LINES
) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(plain_response(status, body, cors=cors))
    await trio.aclose_forcefully(stream)
