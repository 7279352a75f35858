"""Go's text conventions that leak into client-facing error messages.

Upstream's 400/500 bodies are Go error strings, so the exact quoting and splitting rules
matter: ``fmt``'s ``%q`` (``strconv.Quote``), the ``time`` package's private ``quote`` (which
is *not* ``strconv.Quote``: it writes every non-ASCII byte as ``\\xNN``), ``strings.Fields``
and ``strconv.Atoi``'s error texts. Each helper here reproduces one of them.
"""

from __future__ import annotations

import re

from loop_server.gojson import as_go_string

# unicode.IsSpace: ASCII whitespace, U+0085, U+00A0 and the White_Space property.
# Python's str.split() also splits on U+001C..U+001F, which Go does not.
_GO_SPACE = re.compile("[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")

_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1
_DIGITS = frozenset("0123456789")


def go_quote(text: str) -> str:
    """``strconv.Quote`` / ``%q``: printable runes kept, everything else escaped."""
    out = ['"']
    for ch in as_go_string(text):
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            # Python's notion of printable (no C* categories, no Z* except ' ') is Go's IsPrint.
            out.append(ch)
        elif ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def time_quote(text: str | bytes) -> str:
    """The ``time`` package's ``quote``: control and non-ASCII bytes become ``\\xNN``.

    Accepts bytes because ``time.Parse`` slices its input byte-wise, so an error can quote
    half of a multi-byte character.
    """
    raw = text if isinstance(text, bytes) else as_go_string(text).encode("utf-8")
    out = ['"']
    for byte in raw:
        if byte >= 0x80 or byte < 0x20:
            out.append(f"\\x{byte:02x}")
        elif byte in b'"\\':
            out.append("\\" + chr(byte))
        else:
            out.append(chr(byte))
    out.append('"')
    return "".join(out)


def go_fields(text: str) -> list[str]:
    """``strings.Fields``: split on runs of Unicode white space, dropping empty pieces."""
    return [piece for piece in _GO_SPACE.split(text) if piece]


def go_format_slice(items: list[str]) -> str:
    """How ``fmt`` renders a ``[]string`` with ``%s``/``%v``: ``[a b c]``."""
    return "[" + " ".join(items) + "]"


def go_atoi(text: str) -> int:
    """``strconv.Atoi`` on a 64-bit platform, raising ``ValueError`` with Go's message.

    Mirrors both of Go's code paths: short inputs only check syntax; long ones go through
    ``ParseInt``, which reports overflow at the first digit that overflows even when later
    characters are invalid.
    """
    if 0 < len(text) < 19:
        body = text[1:] if text[0] in "+-" else text
        if not body or not _DIGITS.issuperset(body):
            raise ValueError(_num_error(text, "invalid syntax"))
        value = int(body)
        return -value if text[0] == "-" else value
    if not text:
        raise ValueError(_num_error(text, "invalid syntax"))
    negative = text[0] == "-"
    body = text[1:] if text[0] in "+-" else text
    if not body:
        raise ValueError(_num_error(text, "invalid syntax"))
    magnitude = 0
    for ch in body:
        if ch not in _DIGITS:
            raise ValueError(_num_error(text, "invalid syntax"))
        magnitude = magnitude * 10 + (ord(ch) - ord("0"))
        if magnitude > _UINT64_MAX:
            raise ValueError(_num_error(text, "value out of range"))
    value = -magnitude if negative else magnitude
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(_num_error(text, "value out of range"))
    return value


def _num_error(text: str, reason: str) -> str:
    """``strconv.NumError.Error()`` for ``Atoi``."""
    return f"strconv.Atoi: parsing {go_quote(text)}: {reason}"


def go_lower(text: str) -> str:
    """``strings.ToLower``: per-rune simple lowercase mapping.

    Python's ``str.lower`` applies full case mapping, which turns U+0130 into two runes;
    Go maps it to a plain ``i``.
    """
    return "".join("i" if ch == "\u0130" else ch.lower() for ch in text)
