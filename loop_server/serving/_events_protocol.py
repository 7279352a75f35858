"""What the events endpoint means, above the WebSocket layer (SPEC §4.1, A.4): no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EventsRequest:
    """The query of ``GET /api/ws``."""

    #: Initial filter; ``None`` means every channel.
    channels: list[str] | None
    #: Replay everything after this ``seq``; -1 stands for an unusable value (the client gets
    #: ``replay.truncated``).
    since: int | None
    #: The run the client's ``since`` belongs to, when it says so.
    epoch: str | None
    hello: bool


def parse_events_query(query: dict[str, str]) -> EventsRequest:
    raw_channels = query.get("channels", "")
    # Split on "," only and keep every piece as it is: upstream does no trimming.
    channels = raw_channels.split(",") if raw_channels else None
    since: int | None = None
    raw_since = query.get("since")
    if raw_since is not None:
        try:
            since = int(raw_since)
        except ValueError:
            since = -1
    epoch = query.get("epoch") or None
    hello = query.get("hello", "").lower() not in ("", "0", "false")
    return EventsRequest(channels=channels, since=since, epoch=epoch, hello=hello)


_IGNORE = object()


def parse_subscribe(payload: bytes) -> tuple[bool, list[str] | None]:
    """Read a client message. Returns ``(True, channels)`` for a valid ``subscribe`` (channels
    ``None`` means every channel) and ``(False, None)`` for anything to ignore silently: invalid
    JSON, another ``type``, fields of the wrong JSON type."""
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        return False, None
    if not isinstance(message, dict):
        return False, None
    message_type = _field(message, "type")
    if message_type is _IGNORE or message_type != "subscribe":
        return False, None
    channels = _field(message, "channels")
    if channels is None or channels is _IGNORE:
        return True, None
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        return False, None
    return True, channels or None


def _field(message: dict[str, object], name: str) -> object:
    # Go's encoding/json matches field names case-insensitively, preferring an exact match.
    if name in message:
        return message[name]
    for key, value in message.items():
        if key.lower() == name:
            return value
    return _IGNORE
