"""``GET /api/ws`` from a complete request head to a running events connection."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio

from loop_server.events import EventsHub, encode_hello, encode_replay_truncated
from loop_server.serving import _rfc6455
from loop_server.serving._events_connection import EventsConnection
from loop_server.serving._events_protocol import parse_events_query
from loop_server.serving._request_head import (
    ANY_ORIGIN_LINES,
    RequestHead,
    plain_response,
    switching_protocols,
    websocket_key,
)

logger = logging.getLogger("loop_server.serving")

Authorize = Callable[[list[tuple[bytes, bytes]], dict[str, str]], bool]


@dataclass(frozen=True, slots=True)
class EventsEndpoint:
    """What ``serve()`` needs to answer ``/api/ws`` itself.

    ``authorize`` gets the request headers (names lower-cased) and the query (first value of
    each parameter) and says whether the caller may connect (SPEC A.2: bearer header or
    ``?token=``); ``hub`` may be None, and the endpoint then answers 501 as upstream does.
    """

    hub: EventsHub | None
    authorize: Authorize
    path: str = "/api/ws"
    #: Client messages over this close the connection with 1009 (SPEC A.2).
    max_message_size: int = 1 << 20
    #: How long a closing handshake may take before the socket is dropped. Also bounds how
    #: long a slow consumer's last batch may hold the connection after it was marked.
    close_timeout: float = 10.0
    #: The whole request head of an events connection must arrive within this.
    head_timeout: float = 10.0
    #: A request head larger than this is refused (431).
    max_head_size: int = 16 * 1024


async def serve_events_request(
    stream: trio.SocketStream,
    endpoint: EventsEndpoint,
    head: RequestHead,
    leftover: bytes,
    cors: bytes = ANY_ORIGIN_LINES,
) -> None:
    """Answer an events request (the origin policy allowed it, with ``cors`` for its answers):
    a plain HTTP error, or the upgrade and the live stream."""
    hub = endpoint.hub
    if not endpoint.authorize(head.headers, head.query):
        await _answer(stream, plain_response(401, "unauthorized\n", cors=cors))
        return
    if hub is None:
        await _answer(stream, plain_response(501, "events not configured\n", cors=cors))
        return
    key = websocket_key(head)
    if key is None:
        logger.info("events websocket upgrade failed")
        extra = b"Sec-WebSocket-Version: 13\r\n"
        await _answer(stream, plain_response(400, "Bad Request\n", extra, cors))
        return
    request = parse_events_query(head.query)
    # Registration and the replay snapshot happen together, before any checkpoint: no event
    # can fall between the two.
    subscription = hub.register(request.channels, since=request.since, epoch=request.epoch)
    opening = [switching_protocols(key)]
    if request.hello:
        opening.append(_rfc6455.text_frame(encode_hello(hub.epoch, subscription.start_seq)))
    if subscription.replay_truncated:
        frame = encode_replay_truncated(hub.epoch, subscription.start_seq)
        opening.append(_rfc6455.text_frame(frame))
    connection = EventsConnection(
        stream,
        hub,
        subscription,
        max_message_size=endpoint.max_message_size,
        close_timeout=endpoint.close_timeout,
    )
    await connection.run(b"".join(opening), leftover)


async def _answer(stream: trio.SocketStream, response: bytes) -> None:
    try:
        await stream.send_all(response)
        await stream.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await trio.aclose_forcefully(stream)
