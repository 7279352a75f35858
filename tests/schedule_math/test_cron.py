"""CronSchedule: robfig/cron v3 parsing (values, quirks, error texts) and next-minute search."""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from loop_server.schedule_math import CronSchedule

# A Wednesday.
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def following(expr: str, start: datetime, count: int) -> list[datetime]:
    """The next ``count`` firing times after ``start``."""
    schedule = CronSchedule.parse(expr)
    times: list[datetime] = []
    current = start
    for _ in range(count):
        upcoming = schedule.next_after(current)
        assert upcoming is not None
        times.append(upcoming)
        current = upcoming
    return times


# --- parsing: every syntax form ------------------------------------------------------------


def test_parse_all_forms_in_one_expression() -> None:
    schedule = CronSchedule.parse("*/15 0-6/2 1,15 JAN-MAR/2 MON-FRI")
    assert schedule.minutes == (0, 15, 30, 45)
    assert schedule.hours == (0, 2, 4, 6)
    assert schedule.days_of_month == (1, 15)
    assert schedule.months == (1, 3)
    assert schedule.days_of_week == (1, 2, 3, 4, 5)
    assert schedule.dom_wildcard is False
    assert schedule.dow_wildcard is False


def test_star_and_question_mark_are_full_wildcards() -> None:
    for expr in ("* * * * *", "? ? ? ? ?"):
        schedule = CronSchedule.parse(expr)
        assert schedule.minutes == tuple(range(60))
        assert schedule.hours == tuple(range(24))
        assert schedule.days_of_month == tuple(range(1, 32))
        assert schedule.months == tuple(range(1, 13))
        assert schedule.days_of_week == tuple(range(7))
        assert schedule.dom_wildcard is True
        assert schedule.dow_wildcard is True


def test_single_value_list_and_range() -> None:
    schedule = CronSchedule.parse("7 1,5,23 10-12 6 0")
    assert schedule.minutes == (7,)
    assert schedule.hours == (1, 5, 23)
    assert schedule.days_of_month == (10, 11, 12)
    assert schedule.months == (6,)
    assert schedule.days_of_week == (0,)


def test_value_slash_step_runs_to_the_field_maximum() -> None:
    assert CronSchedule.parse("5/20 * * * *").minutes == (5, 25, 45)
    assert CronSchedule.parse("0 20/2 * * *").hours == (20, 22)
    assert CronSchedule.parse("0 0 25/3 * *").days_of_month == (25, 28, 31)
    assert CronSchedule.parse("0 0 * NOV/1 *").months == (11, 12)


def test_range_with_step() -> None:
    assert CronSchedule.parse("10-40/10 * * * *").minutes == (10, 20, 30, 40)
    assert CronSchedule.parse("0 9-17/4 * * *").hours == (9, 13, 17)
    assert CronSchedule.parse("0 0 * * MON-sat/2").days_of_week == (1, 3, 5)


def test_names_are_case_insensitive() -> None:
    for spelling in ("jan,JUL", "Jan,Jul", "JAN,jul"):
        assert CronSchedule.parse(f"0 0 1 {spelling} *").months == (1, 7)
    every_month = "jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec"
    assert CronSchedule.parse(f"0 0 1 {every_month} *").months == tuple(range(1, 13))
    every_day = "SUN,MON,TUE,WED,THU,FRI,SAT"
    assert CronSchedule.parse(f"0 0 * * {every_day}").days_of_week == tuple(range(7))
    assert CronSchedule.parse("0 0 * * Fri-Sat").days_of_week == (5, 6)


def test_names_and_numbers_mix_in_a_range() -> None:
    assert CronSchedule.parse("0 0 1 2-APR *").months == (2, 3, 4)
    assert CronSchedule.parse("0 0 * * 1-wed").days_of_week == (1, 2, 3)


def test_robfig_quirks_are_kept() -> None:
    # Whatever follows "*" before a slash is ignored.
    schedule = CronSchedule.parse("0 0 *-5 * *")
    assert schedule.days_of_month == tuple(range(1, 32))
    assert schedule.dom_wildcard is True
    # Empty list items are skipped.
    assert CronSchedule.parse("1,,2, * * * *").minutes == (1, 2)
    # Go's Atoi accepts a plus sign.
    assert CronSchedule.parse("+5 * * * *").minutes == (5,)
    # Fields split on any run of white space.
    assert CronSchedule.parse("  0\t 9 \n* *   *  ").hours == (9,)


def test_wildcard_flag_needs_a_star_without_a_step_above_one() -> None:
    assert CronSchedule.parse("0 0 */1 * *").dom_wildcard is True
    assert CronSchedule.parse("0 0 */2 * *").dom_wildcard is False
    assert CronSchedule.parse("0 0 * * ?/1").dow_wildcard is True
    assert CronSchedule.parse("0 0 * * */2").dow_wildcard is False
    assert CronSchedule.parse("0 0 1,* * *").dom_wildcard is True
    assert CronSchedule.parse("0 0 1-31 * *").dom_wildcard is False


# --- parsing: error messages ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "empty spec string"),
        ("x", "expected exactly 5 fields, found 1: [x]"),
        ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
        ("0 0 0 * * *", "expected exactly 5 fields, found 6: [0 0 0 * * *]"),
        ("   ", "expected exactly 5 fields, found 0: []"),
        ("@daily", "parser does not accept descriptors: @daily"),
        ("@every 5m", "parser does not accept descriptors: @every 5m"),
        ("TZ=UTC 0 0 * * *", "time zone prefixes (TZ=, CRON_TZ=) are not supported"),
        ("CRON_TZ=UTC 0 0 * * *", "time zone prefixes (TZ=, CRON_TZ=) are not supported"),
        ("0-70 * * * *", "end of range (70) above maximum (59): 0-70"),
        ("60 * * * *", "end of range (60) above maximum (59): 60"),
        ("5-2 * * * *", "beginning of range (5) beyond end of range (2): 5-2"),
        ("60/5 * * * *", "beginning of range (60) beyond end of range (59): 60/5"),
        ("0 24 * * *", "end of range (24) above maximum (23): 24"),
        ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("0 0 32 * *", "end of range (32) above maximum (31): 32"),
        ("0 0 * 0 *", "beginning of range (0) below minimum (1): 0"),
        ("0 0 * 13 *", "end of range (13) above maximum (12): 13"),
        ("0 0 * * 7", "end of range (7) above maximum (6): 7"),
        ("0 0 * * 0-7", "end of range (7) above maximum (6): 0-7"),
        ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
        ("-5 * * * *", 'failed to parse int from : strconv.Atoi: parsing "": invalid syntax'),
        ("*/ * * * *", 'failed to parse int from : strconv.Atoi: parsing "": invalid syntax'),
        (
            "*/x * * * *",
            'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax',
        ),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
        ("0 0 * * 5/0", "step of range should be a positive number: 5/0"),
        ("*/-1 * * * *", "negative number (-1) not allowed: -1"),
        ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
        ("*/2/3 * * * *", "too many slashes: */2/3"),
        (
            "JAN * * * *",
            'failed to parse int from JAN: strconv.Atoi: parsing "JAN": invalid syntax',
        ),
        (
            "0 0 * * MONDAY",
            'failed to parse int from MONDAY: strconv.Atoi: parsing "MONDAY": invalid syntax',
        ),
        (
            "0 0 * JAN-x *",
            'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax',
        ),
        (
            "99999999999999999999 * * * *",
            "failed to parse int from 99999999999999999999: "
            'strconv.Atoi: parsing "99999999999999999999": value out of range',
        ),
        (
            "1000000000000000000 * * * *",
            "end of range (1000000000000000000) above maximum (59): 1000000000000000000",
        ),
        # U+001C is white space to Python's str.split() but not to Go's strings.Fields.
        (
            "0\x1c0 * * * *",
            'failed to parse int from 0\x1c0: strconv.Atoi: parsing "0\\x1c0": invalid syntax',
        ),
    ],
)
def test_parse_errors_have_robfig_texts(expr: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        CronSchedule.parse(expr)
    assert str(info.value) == message


def test_first_bad_field_is_reported() -> None:
    with pytest.raises(ValueError) as info:
        CronSchedule.parse("99 99 99 99 99")
    assert str(info.value) == "end of range (99) above maximum (59): 99"
    with pytest.raises(ValueError) as info:
        CronSchedule.parse("0 0 1 13 8")
    assert str(info.value) == "end of range (13) above maximum (12): 13"


# --- next_after ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("* * * * *", at(2025, 1, 1, 12, 1)),
        ("*/15 * * * *", at(2025, 1, 1, 12, 15)),
        ("5 * * * *", at(2025, 1, 1, 12, 5)),
        ("0 * * * *", at(2025, 1, 1, 13, 0)),
        ("30 14 * * *", at(2025, 1, 1, 14, 30)),
        ("0 9 * * *", at(2025, 1, 2, 9, 0)),
        ("0 8,20 * * *", at(2025, 1, 1, 20, 0)),
        ("0 9-17 * * *", at(2025, 1, 1, 13, 0)),
        ("0 9-17/4 * * *", at(2025, 1, 1, 13, 0)),
        ("10/20 * * * *", at(2025, 1, 1, 12, 10)),
        ("0 0 ? * *", at(2025, 1, 2)),
        ("0 0 1 JAN,jul *", at(2025, 7, 1)),
        ("0 0 1 mar-May *", at(2025, 3, 1)),
        ("0 0 * * SUN", at(2025, 1, 5)),
        ("0 0 * * 0", at(2025, 1, 5)),
        ("0 0 * * 6", at(2025, 1, 4)),
        ("0 0 * * fri-sat", at(2025, 1, 3)),
        ("0 0 1 1 *", at(2026, 1, 1)),
    ],
)
def test_next_after(expr: str, expected: datetime) -> None:
    assert CronSchedule.parse(expr).next_after(NOW) == expected


def test_next_after_is_strictly_after_and_drops_seconds() -> None:
    every_minute = CronSchedule.parse("* * * * *")
    assert every_minute.next_after(at(2025, 1, 1, 12, 0)) == at(2025, 1, 1, 12, 1)
    assert every_minute.next_after(NOW.replace(second=30)) == at(2025, 1, 1, 12, 1)
    almost = datetime(2025, 1, 1, 11, 59, 59, 500_000, tzinfo=UTC)
    assert every_minute.next_after(almost) == at(2025, 1, 1, 12, 0)
    noon = CronSchedule.parse("0 12 * * *")
    assert noon.next_after(NOW) == at(2025, 1, 2, 12, 0)
    assert noon.next_after(NOW - timedelta(microseconds=1)) == at(2025, 1, 1, 12, 0)


def test_next_after_converts_to_utc() -> None:
    plus_two = datetime(2025, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    schedule = CronSchedule.parse("0 13 * * *")
    assert schedule.next_after(plus_two) == at(2025, 1, 1, 13, 0)
    # A naive datetime is taken to be UTC.
    assert schedule.next_after(datetime(2025, 1, 1, 12, 0)) == at(2025, 1, 1, 13, 0)
    result = schedule.next_after(NOW)
    assert result is not None
    assert result.tzinfo is UTC


def test_dom_and_dow_both_restricted_fire_on_either() -> None:
    # Jan 2025: Mondays are 6, 13, 20, 27; Feb 1 is a Saturday, Feb 3 a Monday.
    assert following("0 0 1 * MON", NOW, 6) == [
        at(2025, 1, 6),
        at(2025, 1, 13),
        at(2025, 1, 20),
        at(2025, 1, 27),
        at(2025, 2, 1),
        at(2025, 2, 3),
    ]


def test_dow_only_fires_on_that_weekday() -> None:
    assert following("0 0 * * MON", NOW, 5) == [
        at(2025, 1, 6),
        at(2025, 1, 13),
        at(2025, 1, 20),
        at(2025, 1, 27),
        at(2025, 2, 3),
    ]


def test_dom_only_fires_on_that_day() -> None:
    assert following("0 0 1 * *", NOW, 3) == [at(2025, 2, 1), at(2025, 3, 1), at(2025, 4, 1)]


def test_stepped_star_counts_as_a_restriction() -> None:
    # "*/2" is not a wildcard in robfig, so odd days OR Mondays.
    assert following("0 0 */2 * MON", NOW, 4) == [
        at(2025, 1, 3),
        at(2025, 1, 5),
        at(2025, 1, 6),
        at(2025, 1, 7),
    ]
    # "*/1" is, so Mondays only.
    assert following("0 0 */1 * MON", NOW, 1) == [at(2025, 1, 6)]
    # A first-week range with a weekday is OR, not "the first Monday".
    assert following("0 0 1-7 * MON", NOW, 2) == [at(2025, 1, 2), at(2025, 1, 3)]


def test_empty_dom_list_with_weekday_still_fires_on_the_weekday() -> None:
    assert following("0 0 , * MON", NOW, 2) == [at(2025, 1, 6), at(2025, 1, 13)]


def test_rollovers() -> None:
    # Hour -> day -> month.
    assert CronSchedule.parse("0 0 * * *").next_after(at(2025, 1, 31, 23, 30)) == at(2025, 2, 1)
    # Minute -> hour.
    assert CronSchedule.parse("15 * * * *").next_after(at(2025, 1, 1, 23, 20)) == at(
        2025, 1, 2, 0, 15
    )
    # Year.
    assert CronSchedule.parse("59 23 31 12 *").next_after(at(2025, 12, 31, 23, 59)) == at(
        2026, 12, 31, 23, 59
    )
    assert CronSchedule.parse("* * * * *").next_after(at(2025, 12, 31, 23, 59)) == at(2026, 1, 1)
    # Months without the day are skipped.
    assert following("0 0 31 * *", at(2025, 1, 31), 3) == [
        at(2025, 3, 31),
        at(2025, 5, 31),
        at(2025, 7, 31),
    ]


def test_leap_day() -> None:
    assert following("0 0 29 2 *", NOW, 3) == [
        at(2028, 2, 29),
        at(2032, 2, 29),
        at(2036, 2, 29),
    ]


@pytest.mark.parametrize("expr", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", ", * * * *", "0 0 30,31 2 *"])
def test_never_firing_expression_returns_none(expr: str) -> None:
    assert CronSchedule.parse(expr).next_after(NOW) is None


def test_five_year_limit_matches_robfig() -> None:
    leap_day = CronSchedule.parse("0 0 29 2 *")
    # 2100 is not a leap year: from 2099 the next Feb 29 (2104) is within five years ...
    assert leap_day.next_after(at(2099, 3, 1)) == at(2104, 2, 29)
    # ... but from 2098 it is six years away, and robfig gives up.
    assert leap_day.next_after(at(2098, 12, 31)) is None
    # The limit is counted from the next whole second, as robfig does.
    half_second_before = datetime(2098, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)
    assert leap_day.next_after(half_second_before) == at(2104, 2, 29)
    assert leap_day.next_after(datetime(2098, 12, 31, 23, 59, 58, tzinfo=UTC)) is None


def test_end_of_representable_time_returns_none() -> None:
    assert CronSchedule.parse("* * * * *").next_after(datetime.max.replace(tzinfo=UTC)) is None
    assert CronSchedule.parse("0 0 1 1 *").next_after(at(9999, 6, 1)) is None


def test_impossible_date_search_is_fast() -> None:
    """The search walks months and days, not minutes: about 0.3 ms of CPU here. The bound is
    this thread's CPU time, which other processes on a loaded machine do not inflate, with a
    margin of three orders of magnitude (a minute-by-minute walk of five years takes seconds)."""
    schedule = CronSchedule.parse("0 0 30 2 *")
    worst = CronSchedule.parse("59 23 31 2,4,6,9,11 *")
    for candidate in (schedule, worst):
        started = time.thread_time()
        assert candidate.next_after(NOW) is None
        assert time.thread_time() - started < 0.5


# --- cross-check against a brute-force search ------------------------------------------------


def brute_force_next(schedule: CronSchedule, after: datetime) -> datetime | None:
    """Day-by-day scan with robfig's day rule, written independently of the real search."""
    first = after.replace(microsecond=0) + timedelta(seconds=1)
    last_day = date(first.year + 5, 12, 31)
    if first.second:
        first = first.replace(second=0) + timedelta(minutes=1)
    day = first.date()
    while day <= last_day:
        dom_ok = day.day in schedule.days_of_month
        dow_ok = day.isoweekday() % 7 in schedule.days_of_week
        if schedule.dom_wildcard or schedule.dow_wildcard:
            day_ok = dom_ok and dow_ok
        else:
            day_ok = dom_ok or dow_ok
        if day.month in schedule.months and day_ok:
            for hour in schedule.hours:
                for minute in schedule.minutes:
                    candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                    if candidate >= first:
                        return candidate
        day += timedelta(days=1)
    return None


def random_field(rng: random.Random, low: int, high: int, names: list[str] | None) -> str:
    def value() -> str:
        number = rng.randint(low, high)
        if names is not None and rng.random() < 0.3:
            return names[number - low]
        return str(number)

    kind = rng.choice(["star", "question", "value", "range", "step", "start_step", "list"])
    if kind == "star":
        return "*"
    if kind == "question":
        return "?"
    if kind == "value":
        return value()
    if kind == "range":
        a, b = sorted(rng.sample(range(low, high + 1), 2))
        return f"{a}-{b}"
    if kind == "step":
        return f"*/{rng.randint(1, high - low + 1)}"
    if kind == "start_step":
        return f"{rng.randint(low, high)}/{rng.randint(1, high - low + 1)}"
    return ",".join(value() for _ in range(rng.randint(2, 4)))


MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


def test_matches_brute_force_on_random_expressions() -> None:
    rng = random.Random(20250101)
    checked = 0
    for _ in range(300):
        expr = " ".join(
            [
                random_field(rng, 0, 59, None),
                random_field(rng, 0, 23, None),
                random_field(rng, 1, 31, None),
                random_field(rng, 1, 12, MONTHS),
                random_field(rng, 0, 6, WEEKDAYS),
            ]
        )
        schedule = CronSchedule.parse(expr)
        after = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(
            seconds=rng.randint(0, 6 * 365 * 86400), microseconds=rng.randint(0, 999_999)
        )
        assert schedule.next_after(after) == brute_force_next(schedule, after), (expr, after)
        checked += 1
    assert checked == 300
