"""next_run: the three task types and the exact client-facing error messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from loop_server.schedule_math import ScheduleError, next_run

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("task_type", "schedule", "expected"),
    [
        # Upstream's own table (scheduler_test.go TestCalculateNextRun).
        ("cron", "*/5 * * * *", datetime(2025, 1, 1, 12, 5, tzinfo=UTC)),
        ("interval", "30m", datetime(2025, 1, 1, 12, 30, tzinfo=UTC)),
        ("once", "2026-02-09T14:30:00Z", datetime(2026, 2, 9, 14, 30, tzinfo=UTC)),
        # More of each.
        ("cron", "0 0 1 * MON", datetime(2025, 1, 6, tzinfo=UTC)),
        ("cron", "0 0 29 2 *", datetime(2028, 2, 29, tzinfo=UTC)),
        ("interval", "1h30m", datetime(2025, 1, 1, 13, 30, tzinfo=UTC)),
        ("interval", "1.5h", datetime(2025, 1, 1, 13, 30, tzinfo=UTC)),
        ("interval", "+5m", datetime(2025, 1, 1, 12, 5, tzinfo=UTC)),
        ("interval", "1µs", datetime(2025, 1, 1, 12, 0, 0, 1, tzinfo=UTC)),
        ("once", "2026-02-09T14:30:00+02:00", datetime(2026, 2, 9, 12, 30, tzinfo=UTC)),
        ("once", "2026-02-09T14:30:00.25Z", datetime(2026, 2, 9, 14, 30, 0, 250_000, tzinfo=UTC)),
        # Past once-values are accepted; they fire on the next poll.
        ("once", "2001-01-01T00:00:00Z", datetime(2001, 1, 1, tzinfo=UTC)),
    ],
)
def test_next_run_values(task_type: str, schedule: str, expected: datetime) -> None:
    result = next_run(task_type, schedule, NOW)
    assert result == expected
    assert result.tzinfo is UTC


def test_now_in_another_offset_is_taken_as_the_same_instant() -> None:
    now = datetime(2025, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))  # 12:00 UTC
    assert next_run("cron", "0 13 * * *", now) == datetime(2025, 1, 1, 13, 0, tzinfo=UTC)
    assert next_run("interval", "1h", now) == datetime(2025, 1, 1, 13, 0, tzinfo=UTC)
    assert next_run("interval", "1h", now).tzinfo is UTC


def test_interval_keeps_sub_second_precision_of_now() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    assert next_run("interval", "1.5s", now) == datetime(2025, 1, 1, 12, 0, 1, 750_000, tzinfo=UTC)


def test_cron_drops_seconds_of_now() -> None:
    now = datetime(2025, 1, 1, 12, 0, 42, 123_456, tzinfo=UTC)
    assert next_run("cron", "* * * * *", now) == datetime(2025, 1, 1, 12, 1, tzinfo=UTC)


def _error(task_type: str, schedule: str) -> str:
    with pytest.raises(ScheduleError) as info:
        next_run(task_type, schedule, NOW)
    return str(info.value)


def test_schedule_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (
            "bad",
            'calculating next run: parsing cron schedule "bad": '
            "expected exactly 5 fields, found 1: [bad]",
        ),
        ("", 'calculating next run: parsing cron schedule "": empty spec string'),
        (
            "@daily",
            'calculating next run: parsing cron schedule "@daily": '
            "parser does not accept descriptors: @daily",
        ),
        (
            "0-70 * * * *",
            'calculating next run: parsing cron schedule "0-70 * * * *": '
            "end of range (70) above maximum (59): 0-70",
        ),
        (
            "5-2 * * * *",
            'calculating next run: parsing cron schedule "5-2 * * * *": '
            "beginning of range (5) beyond end of range (2): 5-2",
        ),
        (
            "x * * * *",
            'calculating next run: parsing cron schedule "x * * * *": '
            'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax',
        ),
        (
            "*/0 * * * *",
            'calculating next run: parsing cron schedule "*/0 * * * *": '
            "step of range should be a positive number: */0",
        ),
        (
            '" * * * *',
            'calculating next run: parsing cron schedule "\\" * * * *": '
            'failed to parse int from ": strconv.Atoi: parsing "\\"": invalid syntax',
        ),
        (
            "0 0 30 2 *",
            'calculating next run: cron schedule "0 0 30 2 *" never fires',
        ),
        (
            "0 0 31 4,6,9,11 *",
            'calculating next run: cron schedule "0 0 31 4,6,9,11 *" never fires',
        ),
    ],
)
def test_cron_errors(schedule: str, message: str) -> None:
    assert _error("cron", schedule) == message


@pytest.mark.parametrize(
    ("schedule", "detail"),
    [
        ("not-valid", 'time: invalid duration "not-valid"'),
        ("", 'time: invalid duration ""'),
        ("1", 'time: missing unit in duration "1"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("h", 'time: invalid duration "h"'),
        ("1..5h", 'time: missing unit in duration "1..5h"'),
        ("0", "interval must be positive"),
        ("-0", "interval must be positive"),
        ("0s", "interval must be positive"),
        ("-1s", "interval must be positive"),
    ],
)
def test_interval_errors(schedule: str, detail: str) -> None:
    assert _error("interval", schedule) == (
        f'calculating next run: parsing interval "{schedule}": {detail}'
    )


def test_interval_error_quotes_like_go() -> None:
    # The outer %q keeps printable runes; the time package's inner quote hex-escapes them.
    assert _error("interval", "1µ") == (
        'calculating next run: parsing interval "1µ": '
        'time: unknown unit "\\xc2\\xb5" in duration "1\\xc2\\xb5"'
    )


@pytest.mark.parametrize(
    ("schedule", "detail"),
    [
        (
            "bad",
            'parsing time "bad" as "2006-01-02T15:04:05Z07:00": cannot parse "bad" as "2006"',
        ),
        (
            "2026-02-09 14:30:00Z",
            'parsing time "2026-02-09 14:30:00Z" as "2006-01-02T15:04:05Z07:00": '
            'cannot parse " 14:30:00Z" as "T"',
        ),
        (
            "2026-02-09T14:30:00",
            'parsing time "2026-02-09T14:30:00" as "2006-01-02T15:04:05Z07:00": '
            'cannot parse "" as "Z07:00"',
        ),
        ("2026-02-30T14:30:00Z", 'parsing time "2026-02-30T14:30:00Z": day out of range'),
        ("10m", 'parsing time "10m" as "2006-01-02T15:04:05Z07:00": cannot parse "10m" as "2006"'),
    ],
)
def test_once_errors(schedule: str, detail: str) -> None:
    assert _error("once", schedule) == (
        f'calculating next run: parsing once schedule "{schedule}": '
        f"must be RFC3339 (e.g. 2026-02-09T14:30:00Z): {detail}"
    )


@pytest.mark.parametrize(
    ("task_type", "message"),
    [
        ("weekly", 'calculating next run: unknown task type "weekly"'),
        ("", 'calculating next run: unknown task type ""'),
        ("Cron", 'calculating next run: unknown task type "Cron"'),
        ('a"b\n', 'calculating next run: unknown task type "a\\"b\\n"'),
    ],
)
def test_unknown_task_type(task_type: str, message: str) -> None:
    assert _error(task_type, "*/5 * * * *") == message
