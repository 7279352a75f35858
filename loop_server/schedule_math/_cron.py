"""Five-field cron expressions with robfig/cron v3 semantics, evaluated in UTC.

Upstream parses with ``cron.NewParser(Minute | Hour | Dom | Month | Dow)``: no seconds field
and no ``@descriptors``. The quirks kept on purpose, because users' existing schedules rely
on them:

* ``a/n`` means ``a-max/n``; ``*-5`` is just ``*`` (robfig ignores what follows ``*``);
  empty list items (``1,,2``) are skipped and a field of only commas matches nothing.
* A field written as ``*`` or ``?`` (without a step above 1) is a *wildcard*. When either
  day field is a wildcard a day must satisfy both; otherwise either one is enough.
* ``next_after`` returns the first matching minute strictly after the given instant and
  gives up, as robfig does, once the search leaves the fifth calendar year after it.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from loop_server.schedule_math._gotext import go_atoi, go_fields, go_format_slice, go_lower

_FIELD_COUNT = 5
_YEAR_LIMIT = 5

_MONTH_NAMES: Mapping[str, int] = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_WEEKDAY_NAMES: Mapping[str, int] = {
    name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: Mapping[str, int] | None = None


_MINUTES = _Bounds(0, 59)
_HOURS = _Bounds(0, 23)
_DAYS_OF_MONTH = _Bounds(1, 31)
_MONTHS = _Bounds(1, 12, _MONTH_NAMES)
_DAYS_OF_WEEK = _Bounds(0, 6, _WEEKDAY_NAMES)


def _parse_int(text: str) -> int:
    """robfig's ``mustParseInt``: Go's ``Atoi``, then no negatives."""
    try:
        number = go_atoi(text)
    except ValueError as err:
        raise ValueError(f"failed to parse int from {text}: {err}") from None
    if number < 0:
        raise ValueError(f"negative number ({number}) not allowed: {text}")
    return number


def _parse_int_or_name(text: str, names: Mapping[str, int] | None) -> int:
    if names is not None:
        named = names.get(go_lower(text))
        if named is not None:
            return named
    return _parse_int(text)


def _parse_range(expr: str, bounds: _Bounds) -> tuple[range, bool]:
    """One list item (``*``, ``a``, ``a-b``, each optionally ``/step``).

    Returns the values and whether the item counts as a wildcard. Checks run in robfig's
    order so the first problem reported is the one robfig reports.
    """
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    wildcard = False
    if low_and_high[0] in ("*", "?"):
        start, end, wildcard = bounds.low, bounds.high, True
    else:
        start = _parse_int_or_name(low_and_high[0], bounds.names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _parse_int_or_name(low_and_high[1], bounds.names)
        else:
            raise ValueError(f"too many hyphens: {expr}")

    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _parse_int(range_and_step[1])
        if single:
            end = bounds.high  # "a/n" means "a-max/n"
        if step > 1:
            wildcard = False
    else:
        raise ValueError(f"too many slashes: {expr}")

    if start < bounds.low:
        raise ValueError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        raise ValueError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
    if start > end:
        raise ValueError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ValueError(f"step of range should be a positive number: {expr}")
    return range(start, end + 1, step), wildcard


def _parse_field(field: str, bounds: _Bounds) -> tuple[tuple[int, ...], bool]:
    """A comma-separated list; returns the sorted values and the wildcard flag."""
    values: set[int] = set()
    wildcard = False
    for expr in field.split(","):
        if not expr:  # Go's strings.FieldsFunc drops empty items
            continue
        items, item_wildcard = _parse_range(expr, bounds)
        values.update(items)
        wildcard = wildcard or item_wildcard
    return tuple(sorted(values)), wildcard


def _next_value(values: tuple[int, ...], at_least: int) -> int | None:
    """The smallest value ``>= at_least``, or None."""
    index = bisect_left(values, at_least)
    return values[index] if index < len(values) else None


@dataclass(frozen=True)
class CronSchedule:
    """A parsed five-field cron expression. Build it with :meth:`parse`."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]  # 0 = Sunday
    dom_wildcard: bool
    dow_wildcard: bool

    @classmethod
    def parse(cls, expr: str) -> CronSchedule:
        """Parse like robfig's parser; ``ValueError`` carries robfig's message."""
        if not expr:
            raise ValueError("empty spec string")
        if expr.startswith(("TZ=", "CRON_TZ=")):
            # robfig would switch to that zone; this server computes every schedule in UTC.
            raise ValueError("time zone prefixes (TZ=, CRON_TZ=) are not supported")
        if expr.startswith("@"):
            raise ValueError(f"parser does not accept descriptors: {expr}")
        fields = go_fields(expr)
        if len(fields) != _FIELD_COUNT:
            raise ValueError(
                f"expected exactly {_FIELD_COUNT} fields, found {len(fields)}: "
                f"{go_format_slice(fields)}"
            )
        minutes, _ = _parse_field(fields[0], _MINUTES)
        hours, _ = _parse_field(fields[1], _HOURS)
        days_of_month, dom_wildcard = _parse_field(fields[2], _DAYS_OF_MONTH)
        months, _ = _parse_field(fields[3], _MONTHS)
        days_of_week, dow_wildcard = _parse_field(fields[4], _DAYS_OF_WEEK)
        return cls(
            minutes=minutes,
            hours=hours,
            days_of_month=days_of_month,
            months=months,
            days_of_week=days_of_week,
            dom_wildcard=dom_wildcard,
            dow_wildcard=dow_wildcard,
        )

    def next_after(self, t: datetime) -> datetime | None:
        """The first matching minute strictly after ``t``, as an aware UTC datetime.

        ``t`` is converted to UTC (a naive value is taken to be UTC). Returns None when
        nothing matches before the end of the fifth year after ``t``, as robfig does.
        """
        moment = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
        try:
            # robfig starts at the next whole second and measures its year limit from there,
            # before moving on to the next whole minute.
            first = moment.replace(microsecond=0) + timedelta(seconds=1)
            last_year = min(first.year + _YEAR_LIMIT, datetime.max.year)
            if first.second:
                first = first.replace(second=0) + timedelta(minutes=1)
        except OverflowError:
            return None
        return self._search(first, last_year)

    def _search(self, start: datetime, last_year: int) -> datetime | None:
        """Skip whole months, days and hours that cannot match, then pick the minute."""
        if not (self.minutes and self.hours and self.months):
            return None
        year, month, day = start.year, start.month, start.day
        hour, minute = start.hour, start.minute
        while year <= last_year:
            if month not in self.months:
                found_month = _next_value(self.months, month + 1)
                if found_month is None:
                    year, month = year + 1, self.months[0]
                else:
                    month = found_month
                day, hour, minute = 1, 0, 0
                continue
            found_day = self._first_day(year, month, day)
            if found_day is None:
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
                day, hour, minute = 1, 0, 0
                continue
            if found_day != day:
                day, hour, minute = found_day, 0, 0
            found_hour = _next_value(self.hours, hour)
            if found_hour is None:
                day, hour, minute = day + 1, 0, 0
                continue
            if found_hour != hour:
                hour, minute = found_hour, 0
            found_minute = _next_value(self.minutes, minute)
            if found_minute is None:
                hour, minute = hour + 1, 0
                continue
            return datetime(year, month, day, hour, found_minute, tzinfo=UTC)
        return None

    def _first_day(self, year: int, month: int, day: int) -> int | None:
        """The first day ``>= day`` of the month that matches, or None."""
        days_in_month = calendar.monthrange(year, month)[1]
        if day > days_in_month:
            return None
        weekday = (date(year, month, day).weekday() + 1) % 7  # Python's Monday=0 -> Sunday=0
        for candidate in range(day, days_in_month + 1):
            if self._day_matches(candidate, weekday):
                return candidate
            weekday = (weekday + 1) % 7
        return None

    def _day_matches(self, day_of_month: int, day_of_week: int) -> bool:
        dom_match = day_of_month in self.days_of_month
        dow_match = day_of_week in self.days_of_week
        if self.dom_wildcard or self.dow_wildcard:
            return dom_match and dow_match
        return dom_match or dow_match
