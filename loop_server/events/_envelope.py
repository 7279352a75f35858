"""The wire form of events (SPEC §4.2, A.4): pure functions, no I/O, no hub state.

Every event is encoded exactly once, by the hub, into the bytes every subscriber receives
(SPEC A.3). The key order follows upstream's Go struct (type, channel_id, data, timestamp) with
our ``seq`` last, and strings are written as UTF-8 the way Go's encoder writes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from loop_server.domain import Message

MESSAGE_CREATED = "message.created"
MESSAGE_STREAMING = "message.streaming"
AGENT_STATUS = "agent.status"
TOOL_USE = "tool.use"
AGENT_ACTIVITY = "agent.activity"

HELLO = "hello"
REPLAY_TRUNCATED = "replay.truncated"

# Compact separators: the frame is what every subscriber pays for, byte by byte.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_envelope(
    event_type: str,
    channel_id: str,
    data: Mapping[str, object] | None,
    timestamp_ms: int,
    seq: int,
) -> bytes:
    """The JSON envelope of one event. Raises ``TypeError``/``ValueError`` for data that JSON
    cannot represent."""
    return _encoder.encode(
        {
            "type": event_type,
            "channel_id": channel_id,
            "data": data,
            "timestamp": timestamp_ms,
            "seq": seq,
        }
    ).encode()


def encode_data(data: Mapping[str, object] | None) -> bytes:
    """Only the ``data`` part, for a hub that hands events to another process first (the
    Redis relay): encoded once here, spliced into the envelope by ``envelope_from_parts``.
    Raises like ``encode_envelope``."""
    return _encoder.encode(data).encode()


def envelope_from_parts(
    event_type: str, channel_id: str, data_json: bytes, timestamp_ms: int, seq: int
) -> bytes:
    """The same bytes as ``encode_envelope`` for data already encoded by ``encode_data``: the
    data is spliced in, not decoded and encoded again."""
    return b"".join(
        (
            b'{"type":',
            _encoder.encode(event_type).encode(),
            b',"channel_id":',
            _encoder.encode(channel_id).encode(),
            b',"data":',
            data_json,
            b',"timestamp":%d,"seq":%d}' % (timestamp_ms, seq),
        )
    )


def message_created_data(message: Message) -> dict[str, object]:
    return {
        "msg_id": message.msg_id,
        "author_id": message.author_id,
        "author_name": message.author_name,
        "content": message.content,
        "is_bot": message.is_bot,
    }


def message_streaming_data(content: str) -> dict[str, object]:
    return {"content": content}


def agent_status_data(status: str, error: str = "") -> dict[str, object]:
    # Upstream's `omitempty`: no "error" key at all when there is no error.
    if error:
        return {"status": status, "error": error}
    return {"status": status}


def encode_hello(epoch: str, seq: int) -> bytes:
    """First frame for clients that ask with ``?hello=1``: which run, and the last ``seq``
    that happened before this connection's live stream starts."""
    return _encoder.encode({"type": HELLO, "epoch": epoch, "seq": seq}).encode()


def encode_replay_truncated(epoch: str, seq: int) -> bytes:
    """The hub cannot replay what the client asked for: it should reload over REST. ``epoch``
    and ``seq`` tell it where the live stream that follows starts."""
    return _encoder.encode({"type": REPLAY_TRUNCATED, "epoch": epoch, "seq": seq}).encode()


def tool_use_data(tool_name: str, tool_input: str, tool_use_id: str = "") -> dict[str, object]:
    """Upstream's ``{"tool_name", "input"}`` (the input as a short string), plus the block's
    ``tool_use_id`` (omitted when empty) so a UI can tell two calls of one tool apart."""
    data: dict[str, object] = {"tool_name": tool_name, "input": tool_input}
    if tool_use_id:
        data["tool_use_id"] = tool_use_id
    return data


def agent_activity_data(activity: str, model: str = "", description: str = "") -> dict[str, object]:
    """``{"activity", "model"?, "description"?}``; the optional keys are omitted when empty."""
    data: dict[str, object] = {"activity": activity}
    if model:
        data["model"] = model
    if description:
        data["description"] = description
    return data
