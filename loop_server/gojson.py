"""JSON the way Go's ``encoding/json`` encoder writes it, for upstream-compatible bodies and
WebSocket messages: compact, a trailing newline, and ``<``, ``>``, ``&``, U+2028, U+2029 (and
the ``\\b``/``\\f`` control escapes) written as ``\\uXXXX``. Also the one place where a
decoded string is brought to what Go's decoder would hold (``as_go_string``)."""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATES = re.compile("[\ud800-\udfff]")  # a valid pair is already one character here
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


def go_json(value: Any) -> bytes:
    """Encode like Go's ``json.NewEncoder(w).Encode(value)``."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Scanning left to right, an escaped backslash pair is consumed whole, so "\\b" (a literal
    # backslash then b) is never mistaken for the \b escape.
    text = _GO_ESCAPES.sub(lambda m: _GO_REPLACEMENTS.get(m.group(0), m.group(0)), text)
    return (text + "\n").encode("utf-8")


def as_go_string(text: str) -> str:
    """Replace lone surrogates with U+FFFD, as Go's JSON decoder would have done.

    Python's ``json`` keeps ``"\\ud800"`` as a lone surrogate; a Go server could never hold
    one (and it cannot be encoded as UTF-8 for the store or Docker's API).
    """
    return _SURROGATES.sub("\ufffd", text)
