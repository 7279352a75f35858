"""Upstream's wire conventions (SPEC §1.5), free of any web framework.

* JSON bodies are Go-encoded (``loop_server.gojson``), re-exported here as ``go_json``.
* Request bodies are decoded like Go's ``json.Decoder.Decode`` into a struct: only the first JSON
  value is read, unknown fields are ignored, keys match case-insensitively, ``null`` leaves a
  field unset, and a value of the wrong type is an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from loop_server.gojson import go_json

FieldKind = Literal["str", "int", "bool", "str_list"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


class BodyError(ValueError):
    """The body is not decodable into the route's request struct."""


def decode_body(raw: bytes, schema: Mapping[str, FieldKind]) -> dict[str, Any]:
    """Decode ``raw`` into the fields of ``schema``; absent and null fields are left out."""
    text = raw.decode("utf-8", errors="replace")  # Go substitutes U+FFFD for invalid UTF-8
    start = len(text) - len(text.lstrip(_WHITESPACE))
    if start == len(text):
        raise BodyError("EOF")
    try:
        value, _ = _DECODER.raw_decode(text, start)  # trailing bytes are ignored, as in Go
    except json.JSONDecodeError as err:
        raise BodyError(str(err)) from err
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
        return item
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
        return item
    raise BodyError(f"field {name}: wrong type {type(item).__name__}")


__all__ = ["BodyError", "FieldKind", "decode_body", "go_json"]
