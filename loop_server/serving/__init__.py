"""The server's listener: hypercorn for HTTP, with ``/api/ws`` and ``/api/ws/terminal`` served
on the socket directly.

The composition root calls ``serve(asgi_app, hyper_config, sockets, EventsEndpoint(...),
terminal=TerminalEndpoint(...), shutdown_trigger=...)``; see docs/events.md and
docs/terminal.md for why these sockets bypass ASGI.
"""

from loop_server.serving._events_endpoint import EventsEndpoint
from loop_server.serving._serve import serve
from loop_server.serving._terminal_endpoint import TerminalEndpoint
from loop_server.serving._unix import SocketPathError, bind_unix_socket, remove_socket_file
from loop_server.serving._upgrade import Authorize

__all__ = [
    "Authorize",
    "EventsEndpoint",
    "SocketPathError",
    "TerminalEndpoint",
    "bind_unix_socket",
    "remove_socket_file",
    "serve",
]
