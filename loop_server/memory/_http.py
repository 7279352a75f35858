"""One JSON POST over HTTP/1.1, natively in Trio (h11 for the protocol, Trio for the bytes).

Why not ``http.client`` in a worker thread: a thread blocked in a socket read cannot be
cancelled, so a stalled Ollama would hold a thread (and the indexing task) until a socket
timeout fires, and ``trio.fail_after`` could not bound it. Here every await is a Trio
checkpoint: the caller's deadline and cancellation (shutdown) apply at once. h11 is already a
dependency (hypercorn's) and gets the framing right (Content-Length, chunked, early close).
One request per connection (``Connection: close``): an embedding call costs far more than a
loopback handshake, and there is no pool to keep healthy.
"""

from __future__ import annotations

import json
import os
import ssl
from urllib.parse import urlsplit

import h11
import trio

from loop_server.streams import RECEIVE_SIZE


class HttpError(Exception):
    """The exchange failed before a complete response arrived; the message says where."""


async def post_json(url: str, payload: object, *, max_response_bytes: int) -> tuple[int, bytes]:
    """POST ``payload`` as JSON to ``url``; return the status and the whole response body.

    Raises ``HttpError`` (connection refused, reset, malformed or oversized response).
    Apply a deadline with ``trio.fail_after`` around the call.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as err:
        raise HttpError(f"invalid URL {url!r}: {err}") from err
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    body = json.dumps(payload).encode("utf-8")
    stream = await _connect(parts.scheme, host, port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="POST",
            target=target,
            headers=[
                ("Host", parts.netloc),
                ("User-Agent", "loop-server"),
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ],
        )
        try:
            await stream.send_all(
                conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
            )
            return await _read_response(stream, conn, max_response_bytes)
        except (trio.BrokenResourceError, OSError) as err:
            raise HttpError(f"connection to {host}:{port} lost: {_reason(err)}") from err
        except h11.RemoteProtocolError as err:
            raise HttpError(f"invalid HTTP response from {host}:{port}: {err}") from err


async def _connect(scheme: str, host: str, port: int) -> trio.abc.Stream:
    try:
        if scheme == "https":
            return await trio.open_ssl_over_tcp_stream(
                host, port, ssl_context=ssl.create_default_context()
            )
        return await trio.open_tcp_stream(host, port)
    except OSError as err:
        raise HttpError(f"cannot connect to {host}:{port}: {_reason(err)}") from err


async def _read_response(
    stream: trio.abc.Stream, conn: h11.Connection, max_bytes: int
) -> tuple[int, bytes]:
    status = 0
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            # b"" at end of stream is how h11 learns the peer closed.
            conn.receive_data(bytes(await stream.receive_some(RECEIVE_SIZE)))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_bytes:
                raise HttpError(f"response larger than {max_bytes} bytes")
        elif isinstance(event, h11.EndOfMessage):
            return status, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            raise HttpError("connection closed before the response was complete")
        # h11.InformationalResponse (1xx) and others: keep reading.


def _reason(err: BaseException) -> str:
    """The operating system's words for a failure ("connection refused"), not a wrapper's.

    ``trio.open_tcp_stream`` raises "all attempts to connect to … failed" with the per-address
    errors in an exception group as its cause; those are what a user needs to read.
    """
    cause = err.__cause__
    if isinstance(cause, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(_reason(inner) for inner in cause.exceptions))
    if isinstance(err, OSError) and (err.errno or err.strerror):
        # trio words its strerror "Error connecting to (...): ..."; the errno says it plainly.
        text = os.strerror(err.errno) if err.errno else str(err.strerror)
        return text[:1].lower() + text[1:]
    if cause is not None:
        return _reason(cause)
    return str(err) or type(err).__name__
