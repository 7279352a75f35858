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
# A character of every match of _GO_ESCAPES (the \b and \f escapes start with a backslash).
_GO_TRIGGERS = ("\\", "<", ">", "&", "\u2028", "\u2029")
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
    # Most bodies contain none of the characters Go writes differently, and a substring test
    # is a fast C scan where the regex below costs several times json.dumps itself (history
    # pages: 50 messages per request). Every pattern needs one of these characters.
    if any(c in text for c in _GO_TRIGGERS):
        # Scanning left to right, an escaped backslash pair is consumed whole, so "\\b" (a
        # literal backslash then b) is never mistaken for the \b escape.
        text = _GO_ESCAPES.sub(_go_replacement, text)
    return (text + "\n").encode("utf-8")


def _go_replacement(match: re.Match[str]) -> str:
    return _GO_REPLACEMENTS.get(match.group(0), match.group(0))


def as_go_string(text: str) -> str:
    """Replace lone surrogates with U+FFFD, as Go's JSON decoder would have done.

    Python's ``json`` keeps ``"\\ud800"`` as a lone surrogate; a Go server could never hold
    one (and it cannot be encoded as UTF-8 for the store or Docker's API).
    """
    return _SURROGATES.sub("\ufffd", text)
