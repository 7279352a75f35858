"""The terminal WebSocket's messages (SPEC §5.2–5.3), without I/O.

Client messages are decoded the way upstream's ``json.Unmarshal`` into its message struct
does: the whole frame must be one JSON value; keys match case-insensitively (the last one
wins); ``null`` leaves a field unset; a value of the wrong type, a negative or fractional
``rows``/``cols``, or a non-object is an error (``invalid JSON``). Status messages are encoded
as gorilla's ``WriteJSON`` does: Go's escaping and a trailing newline.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from typing import Any

from loop_server.gojson import as_go_string, go_json

MAX_CMD_ARGS = 64

# Error codes (SPEC §5.3).
INVALID_JSON = "invalid_json"
NO_SESSION = "no_session"
MISSING_FIELD = "missing_field"
INVALID_INPUT = "invalid_input"
SESSION_FAILED = "session_failed"
UNKNOWN_MESSAGE = "unknown_message"

_UINT_MAX = 2**64 - 1


class InvalidMessage(ValueError):
    """The frame does not decode into a control message."""


@dataclass(frozen=True, slots=True)
class ControlMessage:
    type: str = ""
    container_id: str = ""
    channel_id: str = ""
    cmd: tuple[str, ...] = ()
    session_id: str = ""
    data: str = ""
    rows: int = 0
    cols: int = 0


_STRING_FIELDS = ("type", "container_id", "channel_id", "session_id", "data")
_FIELDS = {name: name for name in (*_STRING_FIELDS, "cmd", "rows", "cols")}


def _reject_constant(name: str) -> Any:
    raise InvalidMessage(f"invalid JSON value {name}")  # NaN, Infinity: not JSON to Go


class _Object:
    """A decoded JSON object, its keys kept in order with duplicates and case variants: Go
    applies them in order, so the last one wins."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


def parse_control(payload: bytes) -> ControlMessage:
    """Decode one client frame (text or binary alike)."""
    text = payload.decode("utf-8", errors="replace")  # Go substitutes U+FFFD
    try:
        value = json.loads(text, object_pairs_hook=_Object, parse_constant=_reject_constant)
    except ValueError as err:  # JSONDecodeError, and our own InvalidMessage
        raise InvalidMessage(str(err)) from None
    except RecursionError:  # nested deeper than Python's parser goes
        raise InvalidMessage("exceeded max depth") from None
    if value is None:
        return ControlMessage()  # Go: unmarshalling null into a struct changes nothing
    if not isinstance(value, _Object):
        raise InvalidMessage("not a JSON object")
    fields: dict[str, Any] = {}
    for key, item in value.pairs:
        name = _FIELDS.get(key) or _FIELDS.get(key.lower())
        if name is None or item is None:
            continue
        fields[name] = _check(name, item)
    return ControlMessage(**fields)


def _check(name: str, item: Any) -> Any:
    if name in _STRING_FIELDS:
        if isinstance(item, str):
            return as_go_string(item)
    elif name == "cmd":
        if isinstance(item, list) and all(isinstance(a, str) or a is None for a in item):
            # A null element of a Go []string stays "" (and is then an empty argument).
            return tuple(as_go_string(a or "") for a in item)
    elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= _UINT_MAX:
        return item
    raise InvalidMessage(f"wrong type for field {name}")


def decode_input(data: str) -> bytes:
    """Standard base64 with padding required, as Go's ``base64.StdEncoding`` (which skips
    ``\\r`` and ``\\n``); raises ``InvalidMessage``."""
    try:
        raw = data.replace("\r", "").replace("\n", "").encode("ascii")
        return binascii.a2b_base64(raw, strict_mode=True)
    except (UnicodeEncodeError, binascii.Error) as err:
        raise InvalidMessage(f"invalid base64 data: {err}") from None


def check_cmd(cmd: tuple[str, ...]) -> str | None:
    """The error text for an unacceptable ``cmd`` (SPEC §5.2 create step 3), or None."""
    if len(cmd) > MAX_CMD_ARGS:
        return "cmd exceeds maximum arguments"
    if any(argument == "" for argument in cmd):
        return "cmd contains empty argument"
    if any("\x00" in argument for argument in cmd):
        # No exec can pass it (SPEC A.2: caller text is validated): Docker would start a
        # session only to print an error into it.
        return "cmd contains NUL byte"
    return None


def encode_status(
    message_type: str, *, session_id: str = "", message: str = "", error_code: str = ""
) -> bytes:
    """``{"type", "session_id"?, "message"?, "error_code"?}``: empty fields omitted."""
    fields = {"type": message_type}
    if session_id:
        fields["session_id"] = session_id
    if message:
        fields["message"] = message
    if error_code:
        fields["error_code"] = error_code
    return go_json(fields)


def encode_error(message: str, error_code: str) -> bytes:
    return encode_status("error", message=message, error_code=error_code)


CLOSED = encode_status("closed")
STOPPED = encode_status("stopped")
