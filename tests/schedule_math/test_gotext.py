"""The Go text helpers behind the error messages: %q, the time package's quote, Fields, Atoi."""

from __future__ import annotations

import pytest

from loop_server.schedule_math._gotext import go_atoi, go_fields, go_lower, go_quote, time_quote


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("", '""'),
        ("bad", '"bad"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
        ("\x00\x1c\x7f", '"\\x00\\x1c\\x7f"'),
        ("1µs é ✓", '"1µs é ✓"'),  # printable runes are kept
        ("\u00a0\u200b", '"\\u00a0\\u200b"'),  # non-printable space and format runes
        ("\U000e0001", '"\\U000e0001"'),
        ("\ud800", '"\ufffd"'),  # a lone surrogate is what Go's JSON decoder makes U+FFFD
    ],
)
def test_go_quote_matches_strconv_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("1d", '"1d"'),
        ('"\\', '"\\"\\\\"'),
        ("µ", '"\\xc2\\xb5"'),
        ("a\nb", '"a\\x0ab"'),
        ("\x7f", '"\x7f"'),  # DEL is left alone by the time package
        (b"\xe2\x9c", '"\\xe2\\x9c"'),  # half a character, as time.Parse can slice it
    ],
)
def test_time_quote_matches_the_time_package(text: str | bytes, quoted: str) -> None:
    assert time_quote(text) == quoted


def test_go_fields_splits_like_strings_fields() -> None:
    assert go_fields("  a \t b\n\u3000c\u00a0d  ") == ["a", "b", "c", "d"]
    assert go_fields("a\x1cb") == ["a\x1cb"]
    assert go_fields("   ") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("42", 42), ("+7", 7), ("-7", -7), ("007", 7), ("9223372036854775807", 2**63 - 1)],
)
def test_go_atoi_values(text: str, value: int) -> None:
    assert go_atoi(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'strconv.Atoi: parsing "": invalid syntax'),
        ("+", 'strconv.Atoi: parsing "+": invalid syntax'),
        ("1_000", 'strconv.Atoi: parsing "1_000": invalid syntax'),
        ("١", 'strconv.Atoi: parsing "١": invalid syntax'),  # only ASCII digits count
        ("9223372036854775808", 'strconv.Atoi: parsing "9223372036854775808": value out of range'),
        # Overflow is reported at the first digit that overflows, before later junk.
        (
            "99999999999999999999x",
            'strconv.Atoi: parsing "99999999999999999999x": value out of range',
        ),
        ("1234567890123456789x", 'strconv.Atoi: parsing "1234567890123456789x": invalid syntax'),
    ],
)
def test_go_atoi_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        go_atoi(text)
    assert str(info.value) == message


def test_go_lower_uses_simple_case_mapping() -> None:
    assert go_lower("JAN") == "jan"
    assert go_lower("FR\u0130") == "fri"
