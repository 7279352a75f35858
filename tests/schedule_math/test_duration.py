"""parse_go_duration: Go's time.ParseDuration forms, limits and error texts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from loop_server.schedule_math import parse_go_duration
from loop_server.schedule_math._duration import parse_go_duration_ns


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        (".5s", timedelta(milliseconds=500)),
        ("1.s", timedelta(seconds=1)),
        ("90s", timedelta(seconds=90)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h45m30.5s", timedelta(hours=2, minutes=45, seconds=30, milliseconds=500)),
        ("1m1m", timedelta(minutes=2)),
        ("300ms", timedelta(milliseconds=300)),
        ("1us", timedelta(microseconds=1)),
        ("1µs", timedelta(microseconds=1)),  # U+00B5 MICRO SIGN
        ("1μs", timedelta(microseconds=1)),  # U+03BC GREEK SMALL LETTER MU
        ("1500ns", timedelta(microseconds=1)),  # truncated to microseconds
        ("1ns", timedelta(0)),
        ("-1s", timedelta(seconds=-1)),
        ("-1.5h", timedelta(hours=-1, minutes=-30)),
        ("-1500ns", timedelta(microseconds=-1)),  # truncated toward zero
        ("+5m", timedelta(minutes=5)),
        ("0", timedelta(0)),
        ("-0", timedelta(0)),
        ("+0", timedelta(0)),
        ("0s", timedelta(0)),
        ("000001h", timedelta(hours=1)),
    ],
)
def test_valid_durations(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("1ns", 1),
        ("1.5h", 5_400_000_000_000),
        # Go's float64 fraction arithmetic, truncated.
        ("1.0000000001h", 3_600_000_000_360),
        ("0.1ns", 0),
        # A fraction longer than a uint64 stops adding precision instead of failing.
        ("1.00000000000000000000000001s", 1_000_000_000),
        ("2562047h47m16.854775807s", 9_223_372_036_854_775_807),
        ("9223372036854775807ns", 9_223_372_036_854_775_807),
        ("-9223372036854775808ns", -9_223_372_036_854_775_808),
        ("-2562047h47m16.854775808s", -9_223_372_036_854_775_808),
    ],
)
def test_nanosecond_values(text: str, nanoseconds: int) -> None:
    assert parse_go_duration_ns(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("-", 'time: invalid duration "-"'),
        ("+", 'time: invalid duration "+"'),
        ("h", 'time: invalid duration "h"'),
        ("not-valid", 'time: invalid duration "not-valid"'),
        (".s", 'time: invalid duration ".s"'),
        ("-.s", 'time: invalid duration "-.s"'),
        ("1h-1m", 'time: unknown unit "h-" in duration "1h-1m"'),
        ("00", 'time: missing unit in duration "00"'),
        ("1", 'time: missing unit in duration "1"'),
        ("1h1", 'time: missing unit in duration "1h1"'),
        ("1..5h", 'time: missing unit in duration "1..5h"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("1H", 'time: unknown unit "H" in duration "1H"'),
        ("1h 30m", 'time: unknown unit "h " in duration "1h 30m"'),
        ("1sec", 'time: unknown unit "sec" in duration "1sec"'),
        # The time package's quote escapes quotes/backslashes and writes every
        # non-ASCII or control byte as \xNN (unlike strconv.Quote).
        ('1"x', 'time: unknown unit "\\"x" in duration "1\\"x"'),
        ("1\\", 'time: unknown unit "\\\\" in duration "1\\\\"'),
        ("1µ", 'time: unknown unit "\\xc2\\xb5" in duration "1\\xc2\\xb5"'),
        ("1s\n", 'time: unknown unit "s\\x0a" in duration "1s\\x0a"'),
        # Overflow.
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("9223372036854775809ns", 'time: invalid duration "9223372036854775809ns"'),
        ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
        ("2562048h", 'time: invalid duration "2562048h"'),
        ("2562047h47m16.854775808s", 'time: invalid duration "2562047h47m16.854775808s"'),
        ("99999999999999999999s", 'time: invalid duration "99999999999999999999s"'),
    ],
)
def test_errors_have_go_texts(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_go_duration(text)
    assert str(info.value) == message
