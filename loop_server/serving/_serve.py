"""The listener: hypercorn for HTTP, our own fast path for the events and terminal WebSockets.

hypercorn's ``worker_serve`` accepts connections and gives each to a ``TCPServer``. This is the
same loop built from the same pieces (lifespan, worker context, ``TCPServer``, graceful
timeout) with one step added in front: the first bytes of each connection are looked at, and a
``GET /api/ws`` (or ``GET /api/ws/terminal``) is served here, straight on the socket, instead
of through the ASGI layers that cost most of each delivery (DESIGN §4; for the terminal, a
keystroke's echo: docs/terminal.md). Every other connection reaches hypercorn with the bytes
already read put back in front, so it cannot tell the difference; if a later request on it is
a ``GET`` of one of those paths, hypercorn hands the connection back (``_handover``), so every
upgrade takes the same path whatever came before it on the connection.

Connections are accepted in batches (every connection the kernel has queued, at each wake-up)
from a listen queue as long as the kernel allows: a reconnect storm of thousands of clients at
once is queued and served, not reset (docs/benchmarks.md, "Reconnect storm").
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import repr_socket_addr, wrap_app

from loop_server.events import WritePacer
from loop_server.origin_policy import ANY_ORIGIN, Headers, OriginPolicy
from loop_server.serving._agent_socket import AgentSocketApp
from loop_server.serving._asgi_fallback import WebSocketFallback, WebSocketRoute
from loop_server.serving._events_endpoint import EventsEndpoint, serve_events_request
from loop_server.serving._handover import Handover, HandoverServer
from loop_server.serving._prefixed_stream import PrefixedStream
from loop_server.serving._request_head import (
    HeadError,
    RequestHead,
    Sniff,
    head_end,
    parse_head,
    plain_response,
    sniff_paths,
)
from loop_server.serving._terminal_endpoint import TerminalEndpoint, serve_terminal_request
from loop_server.serving._write_guard import WriteGuard, cut_writes_at
from loop_server.streams import RECEIVE_SIZE

logger = logging.getLogger("loop_server.serving")

#: The listen queue asked for; the kernel caps it at ``net.core.somaxconn`` (4096 on current
#: Linux). hypercorn's default of 100 resets clients in a reconnect storm.
LISTEN_BACKLOG = 65535
# accept(2) errors that mean the system is out of a resource: wait a little and go on.
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_RETRY_DELAY = 0.1
# Connections accepted before the accept loop lets the others run.
_ACCEPT_BATCH = 1024


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
    progress for ``write_timeout`` seconds closes its connection. Every request for a
    WebSocket path (here, or the fallback's non-GET ones) is judged by ``policy`` (None: the
    default rules); the rest is ``asgi_app``'s to judge.
    """
    policy = policy or OriginPolicy()
    if hyper_config.ssl_enabled:
        raise ValueError("serve() speaks plain HTTP only; terminate TLS in front of it")
    hyper_config.set_statsd_logger_class(StatsdLogger)
    # Methods other than GET on the WebSocket paths reach hypercorn: the fallback answers them
    # (HEAD like GET, others 405); everything else goes to ``asgi_app``.
    routes = {events.path: WebSocketRoute(events.authorize, events.hub is not None, "events")}
    if terminal is not None:
        routes[terminal.path] = WebSocketRoute(
            terminal.authorize, terminal.services is not None, "terminal"
        )
    fallback: Any = WebSocketFallback(asgi_app, routes, policy)
    agent_side: Any = AgentSocketApp(asgi_app)
    if events.hub is not None:
        fallback = _PacingWith(fallback, events.hub.pacer)
        agent_side = _PacingWith(agent_side, events.hub.pacer)
    app = wrap_app(fallback, hyper_config.wsgi_max_body_size, "asgi")
    agent_app = wrap_app(agent_side, hyper_config.wsgi_max_body_size, "asgi")
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(app, hyper_config, lifespan_state)
    context = WorkerContext(hyper_config.max_requests)
    writes = WriteGuard(write_timeout)

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()

        async with trio.open_nursery() as server_nursery:
            listeners: list[socket.socket] = []
            binds: list[str] = []
            for sock in [*sockets, *agent_sockets]:
                sock.listen(max(hyper_config.backlog, LISTEN_BACKLOG))
                sock.setblocking(False)
                listeners.append(sock)
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
                    for listener in listeners:
                        router = routers[listener not in sockets]
                        accept_nursery.start_soon(
                            _accept_connections, listener, router.handle, server_nursery
                        )
            finally:
                with trio.CancelScope(shield=True):
                    for listener in listeners:
                        trio.lowlevel.notify_closing(listener)
                        listener.close()
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
        # Paths served on the socket; the index says which endpoint. None on the agent
        # socket: it serves the REST API only (its gateway refuses the WebSocket paths).
        self._paths: list[bytes] = []
        if not agent_socket:
            self._paths.append(events.path.encode())
            if terminal is not None:
                self._paths.append(terminal.path.encode())

    async def handle(self, stream: trio.SocketStream) -> None:
        if self._agent_socket:
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
                    data = await stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    await trio.aclose_forcefully(stream)
                    return
                buffer += data
        if verdict is Sniff.OTHER:
            await self._serve_http(stream, bytes(buffer))
        elif end >= 0:
            try:
                head = parse_head(bytes(buffer[:end]))
            except HeadError:
                await _refuse(stream, 400, "Bad Request\n")
                return
            await self._upgrade(stream, which, head, bytes(buffer[end:]))
        else:
            # Nothing decisive within the head timeout.
            await trio.aclose_forcefully(stream)

    async def _serve_http(self, stream: trio.SocketStream, prefix: bytes) -> None:
        prefixed = PrefixedStream(stream, prefix, self._writes)
        server = HandoverServer(
            self._app, self._config, self._context, self._state, paths=self._paths, stream=prefixed
        )
        handover: Handover | None = None
        try:
            await server.run()
        except* Handover as group:
            # hypercorn has answered every earlier request: the connection is ours now.
            caught = group.exceptions[0]
            assert isinstance(caught, Handover)
            handover = caught
        if handover is not None:
            await self._upgrade(stream, handover.which, handover.head, handover.leftover)

    async def _upgrade(
        self, stream: trio.SocketStream, which: int, head: RequestHead, leftover: bytes
    ) -> None:
        """Every request for a WebSocket path comes here, whatever came before it: the
        origin policy first (a browser page of another origin, a rebinding ``Host``), then the
        endpoint's own checks."""
        over_tcp = stream.socket.family in (socket.AF_INET, socket.AF_INET6)
        verdict = self._policy.judge(head.headers, over_tcp=over_tcp)
        if verdict.refusal is not None:
            await _refuse(stream, 403, verdict.refusal + "\n", cors=())
            return
        kind = "events" if which == 0 else "terminal"
        try:
            if which == 0:
                await serve_events_request(stream, self._events, head, leftover, verdict.cors)
            else:
                assert self._terminal is not None
                await serve_terminal_request(stream, self._terminal, head, leftover, verdict.cors)
        except Exception:
            # One connection's bug must not take the listener (and every other one) down.
            logger.exception("%s connection failed", kind)
            await trio.aclose_forcefully(stream)


class _PacingWith:
    """Tells the events hub's pacer while HTTP requests are being served: the ``/api/ws``
    writers then write in waves that leave the requests their turns (``events/_pacer.py``)."""

    def __init__(self, app: Any, pacer: WritePacer) -> None:
        self._app = app
        self._pacer = pacer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        self._pacer.request_started()
        try:
            await self._app(scope, receive, send)
        finally:
            self._pacer.request_finished()


async def _accept_connections(
    listener: socket.socket,
    handler: Callable[[trio.SocketStream], Awaitable[None]],
    nursery: trio.Nursery,
) -> None:
    """Start ``handler`` for each connection on ``listener``, taking every connection the
    kernel has queued at each wake-up: one task switch per burst rather than per connection,
    so the listen queue empties as fast as a storm fills it."""
    while True:
        await trio.lowlevel.wait_readable(listener)
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, _address = listener.accept()
            except BlockingIOError:
                break
            except OSError as err:
                if err.errno in _ACCEPT_CAPACITY_ERRNOS:
                    logger.error("accept failed (%s); retrying soon", errno.errorcode[err.errno])
                    await trio.sleep(_ACCEPT_RETRY_DELAY)
                    break
                if err.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue  # that client gave up already
                raise
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
            nursery.start_soon(_serve_connection, handler, stream)
        await trio.lowlevel.checkpoint()


async def _serve_connection(
    handler: Callable[[trio.SocketStream], Awaitable[None]], stream: trio.SocketStream
) -> None:
    try:
        await handler(stream)
    finally:
        await trio.aclose_forcefully(stream)


async def _refuse(
    stream: trio.SocketStream, status: int, body: str, cors: Headers = ANY_ORIGIN
) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(plain_response(status, body, cors=cors))
    await trio.aclose_forcefully(stream)
