"""Upstream's wire conventions, free of any web framework.

* JSON bodies are Go-encoded (``loop_server.gojson``), re-exported here as ``go_json``.
* Request bodies are decoded like Go's ``json.Decoder.Decode`` into a struct, with one refusal
  of our own: anything but white space after the value is an error (upstream ignores it, so a
  truncated concatenation or a stray character passed silently). Unknown fields are ignored,
  keys match case-insensitively, ``null`` leaves a field unset, and a value of the wrong type
  is an error. What Python's parser reads differently from Go's is brought in line:
  ``NaN``/``Infinity`` are not JSON (400); an integer of any length is a number (Python refuses
  more than 4300 digits); a lone surrogate escape (``"\\ud800"``) becomes U+FFFD. Nesting
  deeper than Python's recursion allows is a 400 (Go's limit is 10000).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from loop_server.gojson import as_go_string, go_json

FieldKind = Literal["str", "int", "bool", "str_list"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_WHITESPACE = " \t\n\r"
_INT64_CHARS = len(str(_INT64_MIN))  # JSON has no leading zeros: a longer literal is out of range


class BodyError(ValueError):
    """The body is not decodable into the route's request struct."""


def _reject_constant(name: str) -> object:
    raise BodyError(f"invalid character in literal {name}")  # NaN, Infinity: not JSON to Go


def _parse_int(literal: str) -> int | float:
    # Python will not convert an integer literal of more than 4300 digits (a ValueError, which
    # was a 500); past int64's width no field here can take the value, and a float fails the
    # int check exactly as Go's overflow does.
    return int(literal) if len(literal) <= _INT64_CHARS else float(literal)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_int)


def decode_body(raw: bytes, schema: Mapping[str, FieldKind]) -> dict[str, Any]:
    """Decode ``raw`` into the fields of ``schema``; absent and null fields are left out."""
    text = raw.decode("utf-8", errors="replace")  # Go substitutes U+FFFD for invalid UTF-8
    start = len(text) - len(text.lstrip(_WHITESPACE))
    if start == len(text):
        raise BodyError("EOF")
    try:
        value, end = _DECODER.raw_decode(text, start)
    except ValueError as err:  # JSONDecodeError, and BodyError from _reject_constant
        raise BodyError(str(err)) from err
    except RecursionError as err:
        raise BodyError("exceeded max depth") from err
    if text[end:].strip(_WHITESPACE):
        raise BodyError(f"invalid character after top-level value at offset {end}")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BodyError(f"cannot decode {type(value).__name__} into an object")
    result: dict[str, Any] = {}
    lowered = {name.lower(): name for name in schema}
    for key, item in value.items():
        name = key if key in schema else lowered.get(key.lower())
        if name is None:
            continue
        if item is None:
            result.pop(name, None)  # Go leaves the field as it was: null is "absent" here
            continue
        result[name] = _check(name, schema[name], item)
    return result


def _check(name: str, kind: FieldKind, item: Any) -> Any:
    if kind == "str" and isinstance(item, str):
        return as_go_string(item)
    if kind == "bool" and isinstance(item, bool):
        return item
    if (
        kind == "int"
        and isinstance(item, int)
        and not isinstance(item, bool)
        and _INT64_MIN <= item <= _INT64_MAX
    ):
        return item
    if kind == "str_list" and isinstance(item, list) and all(isinstance(i, str) for i in item):
        return [as_go_string(i) for i in item]
    raise BodyError(f"field {name}: wrong type {type(item).__name__}")


__all__ = ["BodyError", "FieldKind", "decode_body", "go_json"]
