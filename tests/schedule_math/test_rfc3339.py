"""The once-schedule parser: Go's time.Parse(time.RFC3339, ...), values and error texts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loop_server.schedule_math._rfc3339 import parse_rfc3339

LAYOUT = '"2006-01-02T15:04:05Z07:00"'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-09T14:30:00Z", datetime(2026, 2, 9, 14, 30, tzinfo=UTC)),
        ("2026-02-09T14:30:00+02:00", datetime(2026, 2, 9, 12, 30, tzinfo=UTC)),
        ("2026-02-09T14:30:00-05:30", datetime(2026, 2, 9, 20, 0, tzinfo=UTC)),
        ("2026-02-09T14:30:00+00:00", datetime(2026, 2, 9, 14, 30, tzinfo=UTC)),
        ("2026-02-09T23:30:00-01:00", datetime(2026, 2, 10, 0, 30, tzinfo=UTC)),
        ("2026-02-09T14:30:00.5Z", datetime(2026, 2, 9, 14, 30, 0, 500_000, tzinfo=UTC)),
        (
            "2026-02-09T14:30:00.123456+01:00",
            datetime(2026, 2, 9, 13, 30, 0, 123_456, tzinfo=UTC),
        ),
        # Beyond microseconds is truncated; beyond nanoseconds Go ignores the digits.
        ("2026-02-09T14:30:00.123456789123Z", datetime(2026, 2, 9, 14, 30, 0, 123_456, tzinfo=UTC)),
        # Go's general parser also takes a comma, a one-digit hour and a 24h offset.
        ("2026-02-09T14:30:00,25Z", datetime(2026, 2, 9, 14, 30, 0, 250_000, tzinfo=UTC)),
        ("2026-02-09T4:30:00Z", datetime(2026, 2, 9, 4, 30, tzinfo=UTC)),
        ("2026-02-09T14:30:00+24:00", datetime(2026, 2, 8, 14, 30, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
        ("2001-01-01T00:00:00Z", datetime(2001, 1, 1, tzinfo=UTC)),
        # Year 0 exists in Go; this instant is in year 1 once in UTC.
        ("0000-12-31T23:00:00-02:00", datetime(1, 1, 1, 1, 0, tzinfo=UTC)),
        ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_valid_timestamps(text: str, expected: datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def cannot_parse(text: str, value_elem: str, layout_elem: str) -> str:
    return f'parsing time "{text}" as {LAYOUT}: cannot parse "{value_elem}" as "{layout_elem}"'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", cannot_parse("", "", "2006")),
        ("bad", cannot_parse("bad", "bad", "2006")),
        ("tomorrow", cannot_parse("tomorrow", "tomorrow", "2006")),
        ("26-02-09T14:30:00Z", cannot_parse("26-02-09T14:30:00Z", "26-02-09T14:30:00Z", "2006")),
        ("2026/02/09T14:30:00Z", cannot_parse("2026/02/09T14:30:00Z", "/02/09T14:30:00Z", "-")),
        ("2026-2-09T14:30:00Z", cannot_parse("2026-2-09T14:30:00Z", "2-09T14:30:00Z", "01")),
        ("2026-02-09", cannot_parse("2026-02-09", "", "T")),
        (
            "2026-02-09 14:30:00Z",
            cannot_parse("2026-02-09 14:30:00Z", " 14:30:00Z", "T"),
        ),
        ("2026-02-09t14:30:00Z", cannot_parse("2026-02-09t14:30:00Z", "t14:30:00Z", "T")),
        ("2026-02-09T14:3:00Z", cannot_parse("2026-02-09T14:3:00Z", "3:00Z", "04")),
        ("2026-02-09T14:30Z", cannot_parse("2026-02-09T14:30Z", "Z", ":")),
        ("2026-02-09T14:30:00", cannot_parse("2026-02-09T14:30:00", "", "Z07:00")),
        (
            "2026-02-09T14:30:00+0200",
            cannot_parse("2026-02-09T14:30:00+0200", "+0200", "Z07:00"),
        ),
        (
            "2026-02-09T14:30:00*02:00",
            cannot_parse("2026-02-09T14:30:00*02:00", "*02:00", "Z07:00"),
        ),
        (
            "2026-02-09T14:30:00.Z",
            cannot_parse("2026-02-09T14:30:00.Z", ".Z", "Z07:00"),
        ),
        ("2026-13-09T14:30:00Z", 'parsing time "2026-13-09T14:30:00Z": month out of range'),
        ("2026-00-09T14:30:00Z", 'parsing time "2026-00-09T14:30:00Z": month out of range'),
        ("2026-02-09T24:00:00Z", 'parsing time "2026-02-09T24:00:00Z": hour out of range'),
        ("2026-02-09T14:60:00Z", 'parsing time "2026-02-09T14:60:00Z": minute out of range'),
        ("2026-02-09T14:30:60Z", 'parsing time "2026-02-09T14:30:60Z": second out of range'),
        ("2026-02-30T00:00:00Z", 'parsing time "2026-02-30T00:00:00Z": day out of range'),
        ("2025-02-29T00:00:00Z", 'parsing time "2025-02-29T00:00:00Z": day out of range'),
        ("2026-04-00T00:00:00Z", 'parsing time "2026-04-00T00:00:00Z": day out of range'),
        (
            "2026-02-09T14:30:00+25:00",
            'parsing time "2026-02-09T14:30:00+25:00": time zone offset hour out of range',
        ),
        # A range error wins over a malformed part found earlier.
        (
            "2026-02-09T14:30:00+25:xx",
            'parsing time "2026-02-09T14:30:00+25:xx": time zone offset hour out of range',
        ),
        (
            "2026-02-09T14:30:00+02:61",
            'parsing time "2026-02-09T14:30:00+02:61": time zone offset minute out of range',
        ),
        (
            "2026-02-09T14:30:00Zjunk",
            'parsing time "2026-02-09T14:30:00Zjunk": extra text: "junk"',
        ),
        (
            "2026-02-09T14:30:00Z\u00e9",
            'parsing time "2026-02-09T14:30:00Z\\xc3\\xa9": extra text: "\\xc3\\xa9"',
        ),
        # Representable in Go, not in Python.
        ("0000-01-01T00:00:00Z", 'parsing time "0000-01-01T00:00:00Z": year out of range'),
        (
            "9999-12-31T23:00:00-02:00",
            'parsing time "9999-12-31T23:00:00-02:00": year out of range',
        ),
    ],
)
def test_errors_have_go_texts(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rfc3339(text)
    assert str(info.value) == message
