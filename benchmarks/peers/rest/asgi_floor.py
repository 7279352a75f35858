"""The floor for benchmarks/rest.py: hypercorn's trio worker serving a bare ASGI app that
answers every request with one constant JSON body (no framework, no routing, no I/O).

``--behind-loop-listener``: the same app served by loop-server's listener instead of stock
hypercorn (``loop_server.serving.serve``: hypercorn's ``TCPServer`` with each answer written
in one send and a keep-alive timer that starts no task per request), to tell what the
listener saves from what loop-server's own code costs.

Usage: python asgi_floor.py [--behind-loop-listener]   (prints "READY <port>"; stops on SIGTERM)
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

# FLOOR_BODY_BYTES: answer a body of that size instead (the floor for a large listing).
_SIZE = int(os.environ.get("FLOOR_BODY_BYTES", "0"))
BODY = b'{"status":"ok"}\n' if _SIZE <= 0 else b'"' + b"x" * max(0, _SIZE - 3) + b'"\n'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    # Drain the request body (a POST's), then answer the constant.
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


async def main() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = None
    print(f"READY {sock.getsockname()[1]}", flush=True)
    stop = trio.Event()

    async def on_term() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                stop.set()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(on_term)
        if "--behind-loop-listener" in sys.argv:
            await _serve_behind_loop_listener(sock, config, stop)
        else:
            await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()


async def _serve_behind_loop_listener(
    sock: socket.socket, config: Config, stop: trio.Event
) -> None:
    from loop_server.serving import EventsEndpoint
    from loop_server.serving import serve as loop_serve

    config.bind = []
    # No events hub: /api/ws answers 501; every other request reaches ``app``.
    events = EventsEndpoint(None, lambda headers, query: False)
    await loop_serve(app, config, [sock], events, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    trio.run(main)
