"""The server's listener: hypercorn for HTTP, with ``/api/ws`` served on the socket directly.

The composition root calls ``serve(asgi_app, hyper_config, sockets, EventsEndpoint(...),
shutdown_trigger=...)``; see docs/events.md for why the events socket bypasses ASGI.
"""

from loop_server.serving._events_endpoint import Authorize, EventsEndpoint
from loop_server.serving._serve import serve

__all__ = ["Authorize", "EventsEndpoint", "serve"]
