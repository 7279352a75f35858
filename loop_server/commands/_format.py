"""The texts of the task and template replies (SPEC A.6), from values: pure, no I/O.

Times are shown in the server's local time with its zone's abbreviation (``2026-03-01 18:30
CET``), as SPEC A.6 and upstream's ``Local().Format("2006-01-02 15:04 MST")`` do; a server
running in UTC (the usual case for a daemon) shows ``... UTC``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from loop_server.commands._config import TaskTemplate
from loop_server.domain import Task

PROMPT_PREVIEW_CHARS = 80
_SECOND_US = 1_000_000


def go_duration(delta: timedelta) -> str:
    """Go's ``Duration.String()`` of ``delta`` rounded to whole seconds (half away from zero,
    as ``Duration.Round``): ``1h2m3s``, ``5m0s``, ``45s``, ``0s``, ``-30s``."""
    micros = delta // timedelta(microseconds=1)
    seconds = (abs(micros) + _SECOND_US // 2) // _SECOND_US
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        text = f"{hours}h{minutes}m{secs}s"
    elif minutes:
        text = f"{minutes}m{secs}s"
    else:
        text = f"{secs}s"
    return "-" + text if micros < 0 else text


def local_minute(moment: datetime) -> str:
    # astimezone() without a zone: the process's local zone (TZ, read by time.tzset()).
    return moment.astimezone().strftime("%Y-%m-%d %H:%M %Z")


def prompt_preview(prompt: str) -> str:
    """One line of at most 80 characters (then ``...``), as upstream's ``TruncateString``;
    counted in characters, not bytes, so a multi-byte character is never cut in half."""
    line = prompt.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    if len(line) <= PROMPT_PREVIEW_CHARS:
        return line
    return line[:PROMPT_PREVIEW_CHARS] + "..."


def _status(task: Task) -> str:
    return "enabled" if task.enabled else "disabled"


def task_line(task: Task, now: datetime) -> str:
    schedule = local_minute(task.next_run_at) if task.type == "once" else f"`{task.schedule}`"
    line = (
        f"- **ID {task.id}** [{task.type}] [{_status(task)}] {schedule}"
        f" — {prompt_preview(task.prompt)} (next: {go_duration(task.next_run_at - now)})"
    )
    if task.auto_delete_sec > 0:
        line += f" (auto_delete: {task.auto_delete_sec}s)"
    return line


def task_list(tasks: Sequence[Task], now: datetime) -> str:
    if not tasks:
        return "No scheduled tasks."
    # Upstream ends every line, the last included, with a newline.
    return "Scheduled tasks:\n" + "".join(task_line(t, now) + "\n" for t in tasks)


def task_detail(task: Task, now: datetime) -> str:
    delta = task.next_run_at - now
    when = f"in {go_duration(delta)}" if delta > timedelta(0) else "due"
    lines = [
        f"**Task {task.id}**",
        f"Type: {task.type}",
        f"Schedule: `{task.schedule}`",
        f"Status: {_status(task)}",
        f"Next run: {local_minute(task.next_run_at)} ({when})",
    ]
    if task.template_name:
        lines.append(f"Template: {task.template_name}")
    if task.auto_delete_sec > 0:
        lines.append(f"Auto-delete: {task.auto_delete_sec}s")
    lines += ["**Prompt:**", task.prompt]
    return "\n".join(lines)


def template_list(templates: Sequence[TaskTemplate]) -> str:
    if not templates:
        return "No templates configured."
    return "Available templates:\n" + "".join(
        f"- **{t.name}** [{t.type}] `{t.schedule}` — {t.description}\n" for t in templates
    )
