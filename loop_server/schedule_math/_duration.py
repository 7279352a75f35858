"""Go's ``time.ParseDuration``, including its exact error texts.

Interval schedules are Go duration strings and a bad one is reported to the client with Go's
own message, so this is a line-by-line port rather than a regular expression: the order of
the checks decides which message a malformed input gets (``1..5h`` is a *missing unit*, not
an *invalid duration*).
"""

from __future__ import annotations

from datetime import timedelta

from loop_server.schedule_math._gotext import time_quote

# A Duration is an int64 count of nanoseconds; the parser accumulates the magnitude in a
# uint64 and allows exactly 1<<63 only for negative values.
_LIMIT = 1 << 63

_UNITS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 MICRO SIGN
    "μs": 1_000,  # U+03BC GREEK SMALL LETTER MU
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3_600 * 1_000_000_000,
}


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _invalid(orig: str) -> ValueError:
    return ValueError(f"time: invalid duration {time_quote(orig)}")


def parse_go_duration_ns(text: str) -> int:
    """Parse ``text`` as Go would and return the signed number of nanoseconds."""
    orig = text
    rest = text
    negative = False
    if rest and rest[0] in "+-":
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise _invalid(orig)

    total = 0
    while rest:
        if not (rest[0] == "." or _is_digit(rest[0])):
            raise _invalid(orig)

        # Integer part, with Go's overflow checks (an overflow here is "invalid duration").
        whole = 0
        i = 0
        while i < len(rest) and _is_digit(rest[i]):
            if whole > _LIMIT // 10:
                raise _invalid(orig)
            whole = whole * 10 + (ord(rest[i]) - ord("0"))
            if whole > _LIMIT:
                raise _invalid(orig)
            i += 1
        has_whole = i > 0
        rest = rest[i:]

        # Fraction: digits past the precision a uint64 can hold are consumed but ignored.
        fraction = 0
        scale = 1.0
        has_fraction = False
        if rest and rest[0] == ".":
            rest = rest[1:]
            i = 0
            overflow = False
            while i < len(rest) and _is_digit(rest[i]):
                if not overflow:
                    if fraction > (_LIMIT - 1) // 10:
                        overflow = True
                    else:
                        widened = fraction * 10 + (ord(rest[i]) - ord("0"))
                        if widened > _LIMIT:
                            overflow = True
                        else:
                            fraction = widened
                            scale *= 10
                i += 1
            has_fraction = i > 0
            rest = rest[i:]
        if not has_whole and not has_fraction:
            raise _invalid(orig)  # e.g. ".s" or "-.s"

        # Unit: everything up to the next digit or dot.
        i = 0
        while i < len(rest) and not (rest[i] == "." or _is_digit(rest[i])):
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {time_quote(orig)}")
        unit_text = rest[:i]
        rest = rest[i:]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise ValueError(
                f"time: unknown unit {time_quote(unit_text)} in duration {time_quote(orig)}"
            )

        if whole > _LIMIT // unit:
            raise _invalid(orig)
        value = whole * unit
        if fraction > 0:
            # Go computes this in float64 and truncates; doing the same keeps results
            # identical to the nanosecond (e.g. "1.0000000001h").
            value += int(float(fraction) * (float(unit) / scale))
            if value > _LIMIT:
                raise _invalid(orig)
        total += value
        if total > _LIMIT:
            raise _invalid(orig)

    if negative:
        return -total
    if total > _LIMIT - 1:
        raise _invalid(orig)
    return total


def ns_to_timedelta(nanoseconds: int) -> timedelta:
    """Nanoseconds to a ``timedelta``, truncating toward zero like Go's ``Microseconds()``."""
    micros = abs(nanoseconds) // 1_000
    return timedelta(microseconds=-micros if nanoseconds < 0 else micros)


def parse_go_duration(text: str) -> timedelta:
    """Go's ``time.ParseDuration`` as a ``timedelta`` (sub-microsecond parts are truncated).

    Raises ``ValueError`` whose message is Go's error text, e.g.
    ``time: unknown unit "d" in duration "1d"``.
    """
    return ns_to_timedelta(parse_go_duration_ns(text))
