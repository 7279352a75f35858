"""``GET /api/ws`` from a complete request head to a running events connection."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from loop_server.events import EventsHub, encode_hello, encode_replay_truncated
from loop_server.origin_policy import ANY_ORIGIN, Headers
from loop_server.serving import _rfc6455
from loop_server.serving._events_connection import EventsConnection
from loop_server.serving._events_protocol import parse_events_query
from loop_server.serving._request_head import RequestHead, switching_protocols, websocket_key
from loop_server.serving._upgrade import Authorize, answer, refusal


@dataclass(frozen=True, slots=True)
class EventsEndpoint:
    """What ``serve()`` needs to answer ``/api/ws`` itself.

    ``authorize`` says whether the caller may connect (``_upgrade.Authorize``); ``hub`` may be
    None, and the endpoint then answers 501 as upstream does.
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
    cors: Headers = ANY_ORIGIN,
) -> None:
    """Answer an events request (the origin policy allowed it, with ``cors`` for
    its answers): a plain HTTP error, or the upgrade and the live stream."""
    hub = endpoint.hub
    refused = refusal(
        head, endpoint.authorize, configured=hub is not None, what="events", cors=cors
    )
    if refused is not None:
        await answer(stream, refused)
        return
    assert hub is not None  # refusal() said so
    key = websocket_key(head)
    assert key is not None  # refusal() said so
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
