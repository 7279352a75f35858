"""The store's time text: ``to_db`` formats by hand for speed, and must write exactly what
``strftime`` wrote before, or string comparisons in SQL would order old and new rows apart."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from loop_server.timefmt import from_db, to_db


def _strftime(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_to_db_writes_what_strftime_wrote() -> None:
    rng = random.Random(20261204)
    zones = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    for _ in range(20_000):
        dt = datetime(
            rng.choice([rng.randint(2, 9998), 999, 1000, 1001]),
            rng.randint(1, 12),
            rng.randint(1, 28),
            rng.randint(0, 23),
            rng.randint(0, 59),
            rng.randint(0, 59),
            rng.choice([0, 1, 999_999, rng.randint(0, 999_999)]),
            tzinfo=rng.choice(zones),
        )
        assert to_db(dt) == _strftime(dt), dt


def test_naive_values_are_taken_as_utc_and_read_back() -> None:
    naive = datetime(2026, 12, 4, 21, 5, 9, 120)
    assert to_db(naive) == "2026-12-04T21:05:09.000120Z"
    assert from_db(to_db(naive)) == naive.replace(tzinfo=UTC)
