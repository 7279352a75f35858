"""Upstream's wire conventions (SPEC §1.5), free of any web framework.

* JSON bodies are compact, end with a newline, and escape ``<``, ``>``, ``&``, U+2028 and U+2029
  the way Go's ``encoding/json`` does.
* Request bodies are decoded like Go's ``json.Decoder.Decode`` into a struct: only the first JSON
  value is read, unknown fields are ignored, keys match case-insensitively, ``null`` leaves a
  field unset, and a value of the wrong type is an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

FieldKind = Literal["str", "int", "bool", "str_list"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_GO_ESCAPES = re.compile(r"\\\\|\\b|\\f|[<>&\u2028\u2029]")
_GO_REPLACEMENTS = {
    "\\b": "\\u0008",
    "\\f": "\\u000c",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


class BodyError(ValueError):
    """The body is not decodable into the route's request struct."""


def go_json(value: Any) -> bytes:
    """Encode like Go's ``json.NewEncoder(w).Encode(value)``."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Scanning left to right, an escaped backslash pair is consumed whole, so "\\b" (a literal
    # backslash then b) is never mistaken for the \b escape.
    text = _GO_ESCAPES.sub(lambda m: _GO_REPLACEMENTS.get(m.group(0), m.group(0)), text)
    return (text + "\n").encode("utf-8")


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
