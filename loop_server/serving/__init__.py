"""The server's listener: hypercorn for HTTP, with ``/api/ws`` and ``/api/ws/terminal`` served
on the socket directly.

Listener set-up lives here too: the composition root binds with ``bind_socket`` (and
``bind_unix_socket`` for the agent socket), then calls ``serve_api(asgi_app, sock,
EventsEndpoint(...), terminal=TerminalEndpoint(...), shutdown_trigger=..., ...)``, which
configures hypercorn (``hypercorn_config``) around ``serve``; see docs/events.md and
docs/terminal.md for why these sockets bypass ASGI.
"""

from loop_server.serving._events_endpoint import EventsEndpoint
from loop_server.serving._listener import (
    ListenError,
    bind_socket,
    hypercorn_config,
    listening_url,
    serve_api,
)
from loop_server.serving._serve import serve
from loop_server.serving._terminal_endpoint import TerminalEndpoint
from loop_server.serving._unix import SocketPathError, bind_unix_socket, remove_socket_file
from loop_server.serving._upgrade import Authorize

__all__ = [
    "Authorize",
    "EventsEndpoint",
    "ListenError",
    "SocketPathError",
    "TerminalEndpoint",
    "bind_socket",
    "bind_unix_socket",
    "hypercorn_config",
    "listening_url",
    "remove_socket_file",
    "serve",
    "serve_api",
]
