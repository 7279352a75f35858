"""Listener set-up: the bound TCP socket, hypercorn's configuration, and the ASGI wrapper the
HTTP side is served under (``serve_api``). The composition root only passes collaborators in."""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig

from loop_server.origin_policy import OriginPolicy
from loop_server.serving._events_endpoint import EventsEndpoint
from loop_server.serving._serve import serve
from loop_server.serving._terminal_endpoint import TerminalEndpoint


class ListenError(Exception):
    """The listening socket cannot be bound; the text says why (``listening on ADDR: …``)."""


def bind_socket(host: str, port: int, addr: str) -> socket.socket:
    """Bind before serving so a taken port is a clear start-up error, not a traceback."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
    except OSError as err:
        raise ListenError(f"listening on {addr}: {err.strerror or err}") from err
    sock.setblocking(False)
    return sock


def listening_url(sock: socket.socket) -> tuple[str, str, int]:
    """``(url, host, port)`` of a bound TCP socket, an IPv6 host in brackets in the URL."""
    bound_host, bound_port = sock.getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    return f"http://{shown_host}:{bound_port}", bound_host, bound_port


def hypercorn_config(*, graceful_timeout: float, websocket_max_message_size: int) -> HyperConfig:
    hyper = HyperConfig()
    hyper.graceful_timeout = graceful_timeout
    hyper.websocket_max_message_size = websocket_max_message_size
    hyper.accesslog = None
    # A Logger instance makes hypercorn log through our logging set-up instead of adding a
    # stderr handler of its own (which printed every line twice).
    hyper.errorlog = logging.getLogger("hypercorn.error")
    hyper.include_server_header = False
    return hyper


async def serve_api(
    app: Any,
    sock: socket.socket,
    events: EventsEndpoint,
    *,
    terminal: TerminalEndpoint,
    policy: OriginPolicy,
    agent_sockets: Sequence[socket.socket],
    graceful_timeout: float,
    max_ws_message_bytes: int,
    write_timeout: float | None,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``serve`` the API on ``sock`` (and the agent sockets), hypercorn configured by
    ``hypercorn_config``."""
    await serve(
        app,
        hypercorn_config(
            graceful_timeout=graceful_timeout, websocket_max_message_size=max_ws_message_bytes
        ),
        [sock],
        events,
        terminal=terminal,
        shutdown_trigger=shutdown_trigger,
        write_timeout=write_timeout,
        policy=policy,
        agent_sockets=agent_sockets,
        task_status=task_status,
    )
