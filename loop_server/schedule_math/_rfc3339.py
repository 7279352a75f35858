"""Go's ``time.Parse(time.RFC3339, s)``, including its exact error texts.

``once`` schedules are parsed by upstream with Go's general layout parser, whose rules are
looser and stricter than ``datetime.fromisoformat`` in different places: the hour may be one
digit, the fraction may follow a comma, a zone offset may be ``+24:00`` and the ``T`` must be
upper case. Errors name the failing layout element (``cannot parse "x" as "2006"``), so this
walks the layout ``2006-01-02T15:04:05Z07:00`` element by element as Go does. Go's fast path
for RFC 3339 accepts a subset of what this general parser accepts and yields the same
instant, so porting only the general parser is enough.

Work is done on UTF-8 bytes because Go slices its input byte-wise and its messages can show
partial characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from loop_server.gojson import as_go_string
from loop_server.schedule_math._gotext import time_quote

_LAYOUT = "2006-01-02T15:04:05Z07:00"
# (literal prefix, layout element) pairs, in the order Go's nextStdChunk yields them.
_CHUNKS = (
    (b"", "2006"),
    (b"-", "01"),
    (b"-", "02"),
    (b"T", "15"),
    (b":", "04"),
    (b":", "05"),
    (b"", "Z07:00"),
)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Python cannot represent year 0 (which Go's four-digit years allow); a 400-year Gregorian
# cycle is exactly this many days, so year 0 is handled as year 400 and shifted back.
_DAYS_PER_400_YEARS = 146_097


class _BadElement(Exception):
    """Go's internal ``errBad``: the element did not match; never shown as such."""


@dataclass
class _Fields:
    year: int = 0
    month: int = 0
    day: int = 0
    hour: int = 0
    minute: int = 0
    second: int = 0
    nanosecond: int = 0
    offset_seconds: int = 0


def _is_digit(value: bytes, index: int) -> bool:
    return index < len(value) and 0x30 <= value[index] <= 0x39


def _getnum(value: bytes, fixed: bool) -> tuple[int, bytes]:
    """Go's ``getnum``: one or two digits (exactly two when ``fixed``)."""
    if not _is_digit(value, 0):
        raise _BadElement
    if not _is_digit(value, 1):
        if fixed:
            raise _BadElement
        return value[0] - 0x30, value[1:]
    return (value[0] - 0x30) * 10 + (value[1] - 0x30), value[2:]


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in(month: int, year: int) -> int:
    if month == 2 and _is_leap(year):
        return 29
    return _DAYS_IN_MONTH[month - 1]


class _Parser:
    """One run of Go's ``parse`` over the RFC 3339 layout."""

    def __init__(self, text: str) -> None:
        self.text = as_go_string(text)
        self.value = self.text.encode("utf-8")
        self.fields = _Fields()

    def error(self, layout_elem: str, value_elem: bytes) -> ValueError:
        """``ParseError`` without a message: ``cannot parse X as Y``."""
        return ValueError(
            f"parsing time {time_quote(self.text)} as {time_quote(_LAYOUT)}: "
            f"cannot parse {time_quote(value_elem)} as {time_quote(layout_elem)}"
        )

    def error_message(self, message: str) -> ValueError:
        """``ParseError`` with a message: ``parsing time "..."`` + message."""
        return ValueError(f"parsing time {time_quote(self.text)}{message}")

    def run(self) -> _Fields:
        for prefix, element in _CHUNKS:
            if prefix and not self.value.startswith(prefix):
                raise self.error(prefix.decode("ascii"), self.value)
            self.value = self.value[len(prefix) :]
            hold = self.value
            try:
                out_of_range = self.element(element)
            except _BadElement:
                raise self.error(element, hold) from None
            if out_of_range:
                raise self.error_message(f": {out_of_range} out of range")
        if self.value:
            raise self.error_message(f": extra text: {time_quote(self.value)}")
        fields = self.fields
        if not 1 <= fields.day <= _days_in(fields.month, fields.year):
            raise self.error_message(": day out of range")
        return fields

    def element(self, element: str) -> str:
        """Consume one layout element; return the name of an out-of-range field, or ''."""
        fields = self.fields
        if element == "2006":
            if len(self.value) < 4 or not _is_digit(self.value, 0):
                raise _BadElement
            digits, self.value = self.value[:4], self.value[4:]
            if not all(0x30 <= b <= 0x39 for b in digits):
                raise _BadElement
            fields.year = int(digits)
        elif element == "01":
            fields.month, self.value = _getnum(self.value, fixed=True)
            if not 1 <= fields.month <= 12:
                return "month"
        elif element == "02":
            # Any two digits; the day is checked against the month once parsing is done.
            fields.day, self.value = _getnum(self.value, fixed=True)
        elif element == "15":
            fields.hour, self.value = _getnum(self.value, fixed=False)
            if fields.hour >= 24:
                return "hour"
        elif element == "04":
            fields.minute, self.value = _getnum(self.value, fixed=True)
            if fields.minute >= 60:
                return "minute"
        elif element == "05":
            return self.seconds()
        else:
            return self.zone()
        return ""

    def seconds(self) -> str:
        fields = self.fields
        fields.second, self.value = _getnum(self.value, fixed=True)
        if fields.second >= 60:
            return "second"
        # The layout has no fraction, but Go accepts one (after '.' or ',') right here.
        value = self.value
        if len(value) >= 2 and value[0] in b".," and _is_digit(value, 1):
            end = 2
            while _is_digit(value, end):
                end += 1
            digits = value[1 : min(end, 10)]  # at most nine digits count: nanoseconds
            fields.nanosecond = int(digits) * 10 ** (9 - len(digits))
            self.value = value[end:]
        return ""

    def zone(self) -> str:
        value = self.value
        if value[:1] == b"Z":
            self.value = value[1:]
            self.fields.offset_seconds = 0
            return ""
        if len(value) < 6 or value[3] != ord(":"):
            raise _BadElement
        sign, hours, minutes = value[:1], value[1:3], value[4:6]
        self.value = value[6:]
        # Go records a bad digit pair or sign and keeps going: a range error found on the
        # way is reported in preference to it (so "+25:xx" is "offset hour out of range").
        bad = False
        hour = minute = 0
        try:
            hour, _ = _getnum(hours, fixed=True)
            minute, _ = _getnum(minutes, fixed=True)
        except _BadElement:
            bad = True
        # Go tests with '>' (offsets of 24h or 60m are tolerated); a later check overwrites
        # an earlier one, so the minute wins when both are out of range.
        out_of_range = ""
        if hour > 24:
            out_of_range = "time zone offset hour"
        if minute > 60:
            out_of_range = "time zone offset minute"
        if sign not in (b"+", b"-"):
            bad = True
        if out_of_range:
            return out_of_range
        if bad:
            raise _BadElement
        offset = (hour * 60 + minute) * 60
        self.fields.offset_seconds = -offset if sign == b"-" else offset
        return ""


def parse_rfc3339(text: str) -> datetime:
    """Parse ``text`` like Go's ``time.Parse(time.RFC3339, text)``; return an aware UTC time.

    Raises ``ValueError`` with Go's ``ParseError`` text. Fractions beyond microseconds are
    truncated (Python's resolution). Instants outside years 1..9999, which Go can hold but
    ``datetime`` cannot, are rejected with ``year out of range``.
    """
    parser = _Parser(text)
    fields = parser.run()
    shifted = fields.year < 1
    try:
        local = datetime(
            fields.year + 400 if shifted else fields.year,
            fields.month,
            fields.day,
            fields.hour,
            fields.minute,
            fields.second,
            fields.nanosecond // 1_000,
        )
        instant = local - timedelta(seconds=fields.offset_seconds)
        if shifted:
            instant -= timedelta(days=_DAYS_PER_400_YEARS)
    except (OverflowError, ValueError):
        raise parser.error_message(": year out of range") from None
    return instant.replace(tzinfo=UTC)
