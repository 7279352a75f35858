"""The reply texts built from tasks and templates (SPEC A.6): pure functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from loop_server.commands import TaskTemplate, go_duration
from loop_server.commands._format import (
    prompt_preview,
    task_detail,
    task_line,
    task_list,
    template_list,
)
from loop_server.domain import Task

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def make_task(**overrides: object) -> Task:
    base = Task(
        id=4,
        channel_id="c1",
        guild_id="",
        schedule="0 9 * * *",
        type="cron",
        prompt="check the build",
        enabled=True,
        next_run_at=NOW + timedelta(hours=1, minutes=2, seconds=3),
        created_at=NOW,
        updated_at=NOW,
        template_name="",
        auto_delete_sec=0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(milliseconds=499), "0s"),
        (timedelta(milliseconds=500), "1s"),  # half away from zero, as Go's Duration.Round
        (timedelta(milliseconds=-500), "-1s"),
        (timedelta(milliseconds=-499), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=59, milliseconds=600), "1m0s"),
        (timedelta(minutes=5), "5m0s"),
        (timedelta(hours=1), "1h0m0s"),
        (timedelta(hours=1, minutes=2, seconds=3), "1h2m3s"),
        (timedelta(days=2, hours=3), "51h0m0s"),  # Go has no day unit
        (timedelta(seconds=-30), "-30s"),
        (timedelta(hours=-1, minutes=-1), "-1h1m0s"),
    ],
)
def test_go_duration(delta: timedelta, text: str) -> None:
    assert go_duration(delta) == text


def test_prompt_preview() -> None:
    assert prompt_preview("short") == "short"
    assert prompt_preview("x" * 80) == "x" * 80
    assert prompt_preview("x" * 81) == "x" * 80 + "..."
    assert prompt_preview("line one\nline two\r\nthree\rfour") == "line one line two three four"
    # Characters, not bytes: a multi-byte character is never cut in half.
    assert prompt_preview("é" * 81) == "é" * 80 + "..."


def test_task_line_for_cron_and_interval() -> None:
    assert task_line(make_task(), NOW) == (
        "- **ID 4** [cron] [enabled] `0 9 * * *` — check the build (next: 1h2m3s)"
    )
    interval = make_task(
        type="interval", schedule="30m", enabled=False, next_run_at=NOW - timedelta(seconds=5)
    )
    assert task_line(interval, NOW) == (
        "- **ID 4** [interval] [disabled] `30m` — check the build (next: -5s)"
    )


def test_task_line_for_once_shows_the_local_minute() -> None:
    once = make_task(
        type="once",
        schedule="2026-03-02T08:30:59+02:00",
        next_run_at=datetime(2026, 3, 2, 6, 30, 59, tzinfo=UTC),
    )
    assert task_line(once, NOW) == (
        "- **ID 4** [once] [enabled] 2026-03-02 06:30 UTC — check the build (next: 18h30m59s)"
    )


@pytest.mark.parametrize(
    ("zone", "when", "shown"),
    [
        ("EST+5", datetime(2026, 3, 2, 6, 30, 59, tzinfo=UTC), "2026-03-02 01:30 EST"),
        # Daylight saving time: the abbreviation and offset of that instant.
        (
            "CET-1CEST,M3.5.0,M10.5.0/3",
            datetime(2026, 7, 1, 6, 30, tzinfo=UTC),
            "2026-07-01 08:30 CEST",
        ),
        (
            "CET-1CEST,M3.5.0,M10.5.0/3",
            datetime(2026, 3, 2, 6, 30, tzinfo=UTC),
            "2026-03-02 07:30 CET",
        ),
    ],
)
def test_times_are_the_servers_local_time_with_its_zone(
    local_zone: Callable[[str], None], zone: str, when: datetime, shown: str
) -> None:
    """SPEC A.6: a once-task's SCHEDULE is "the local time `YYYY-MM-DD HH:MM TZ`" (upstream's
    ``Local().Format("2006-01-02 15:04 MST")``); ``task N`` shows its next run the same way."""
    local_zone(zone)
    once = make_task(type="once", schedule=when.isoformat(), next_run_at=when)
    assert f"[once] [enabled] {shown} — check the build" in task_line(once, NOW)
    assert f"\nNext run: {shown} (in " in task_detail(once, NOW)


def test_task_line_auto_delete_and_long_prompt() -> None:
    task = make_task(prompt="p" * 100 + "\nmore", auto_delete_sec=3600)
    assert task_line(task, NOW) == (
        f"- **ID 4** [cron] [enabled] `0 9 * * *` — {'p' * 80}... (next: 1h2m3s)"
        " (auto_delete: 3600s)"
    )


def test_task_list() -> None:
    assert task_list([], NOW) == "No scheduled tasks."
    two = [make_task(), make_task(id=5, prompt="second")]
    assert task_list(two, NOW) == (
        "Scheduled tasks:\n"
        "- **ID 4** [cron] [enabled] `0 9 * * *` — check the build (next: 1h2m3s)\n"
        "- **ID 5** [cron] [enabled] `0 9 * * *` — second (next: 1h2m3s)\n"
    )


def test_task_detail() -> None:
    assert task_detail(make_task(prompt="line 1\nline 2"), NOW) == (
        "**Task 4**\n"
        "Type: cron\n"
        "Schedule: `0 9 * * *`\n"
        "Status: enabled\n"
        "Next run: 2026-03-01 13:02 UTC (in 1h2m3s)\n"
        "**Prompt:**\n"
        "line 1\nline 2"
    )


def test_task_detail_with_template_auto_delete_and_due() -> None:
    task = make_task(
        enabled=False,
        template_name="daily",
        auto_delete_sec=60,
        next_run_at=NOW - timedelta(minutes=1),
    )
    assert task_detail(task, NOW) == (
        "**Task 4**\n"
        "Type: cron\n"
        "Schedule: `0 9 * * *`\n"
        "Status: disabled\n"
        "Next run: 2026-03-01 11:59 UTC (due)\n"
        "Template: daily\n"
        "Auto-delete: 60s\n"
        "**Prompt:**\n"
        "check the build"
    )


def test_template_list() -> None:
    assert template_list([]) == "No templates configured."
    templates = [
        TaskTemplate("daily", "cron", "0 17 * * *", "p", description="Daily summary"),
        TaskTemplate("poll", "interval", "5m", "p"),
    ]
    assert template_list(templates) == (
        "Available templates:\n"
        "- **daily** [cron] `0 17 * * *` — Daily summary\n"
        "- **poll** [interval] `5m` — \n"
    )
