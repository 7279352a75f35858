"""One published event, shared by every subscriber it is delivered to."""

from __future__ import annotations


class Event:
    """An event as the hub published it: its place in the run, its routing key and its
    encoded envelope.

    ``frame`` caches a transport's framing of ``payload`` (the WebSocket layer stores the
    complete server→client frame there). Server frames are unmasked, so the bytes are the
    same for every connection: the first connection to send the event builds them and all
    others reuse them, which keeps the per-delivery cost at a list append.

    ``is_global`` events reach every subscription whatever its channel filter (upstream's
    global events: channels and tasks appearing or going, containers changing state).
    """

    __slots__ = ("channel_id", "frame", "is_global", "payload", "seq", "type")

    def __init__(
        self, seq: int, event_type: str, channel_id: str, payload: bytes, *, is_global: bool = False
    ) -> None:
        self.seq = seq
        self.type = event_type
        self.channel_id = channel_id
        self.payload = payload
        self.is_global = is_global
        self.frame: bytes | None = None

    def __repr__(self) -> str:
        return f"Event(seq={self.seq}, type={self.type!r}, channel_id={self.channel_id!r})"


class OutboundEvent:
    """An event a hub in relay mode hands to the relay instead of delivering it: its parts,
    with ``data`` already JSON-encoded (once). The relay gives it its ``seq`` (docs/events.md,
    "Across instances")."""

    __slots__ = ("channel_id", "data_json", "is_global", "timestamp_ms", "type")

    def __init__(
        self,
        event_type: str,
        channel_id: str,
        data_json: bytes,
        timestamp_ms: int,
        *,
        is_global: bool = False,
    ) -> None:
        self.type = event_type
        self.channel_id = channel_id
        self.data_json = data_json
        self.timestamp_ms = timestamp_ms
        self.is_global = is_global

    def __repr__(self) -> str:
        return f"OutboundEvent(type={self.type!r}, channel_id={self.channel_id!r})"
