"""The config file keys the slash commands read, typed and validated at start-up.

``task_templates`` (upstream's shape) and ``permissions`` arrive in ``Config.extra``::

    "task_templates": [
      {"name": "daily-summary", "description": "Summarise the day",
       "type": "cron", "schedule": "0 17 * * *", "prompt": "Summarise ...",
       "auto_delete_sec": 0}
    ],
    "permissions": {"owners": {"users": ["U1"]}, "members": {"users": ["U2"]}}

A template whose schedule cannot be scheduled is refused here, with the scheduler's own error
text, so ``template-add`` never meets a template that was broken from the start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loop_server.commands._permissions import (
    Permissions,
    PermissionsConfigError,
    permissions_from_config,
)
from loop_server.domain import TASK_TYPES
from loop_server.schedule_math import ScheduleError, next_run
from loop_server.timefmt import now_utc


class CommandsConfigError(ValueError):
    """``task_templates`` or ``permissions`` is malformed; the message names the entry."""


@dataclass(frozen=True, slots=True)
class TaskTemplate:
    name: str
    type: str
    schedule: str
    prompt: str
    description: str = ""
    auto_delete_sec: int = 0


@dataclass(frozen=True, slots=True)
class CommandsConfig:
    templates: tuple[TaskTemplate, ...] = ()
    permissions: Permissions = field(default_factory=Permissions)

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], *, now: datetime | None = None) -> CommandsConfig:
        """Build from ``Config.extra``; ``now`` is when template schedules are checked."""
        try:
            permissions = permissions_from_config(extra.get("permissions"))
        except PermissionsConfigError as err:
            raise CommandsConfigError(str(err)) from err
        templates = templates_from_config(extra.get("task_templates"), now or now_utc())
        return cls(templates=templates, permissions=permissions)


def templates_from_config(value: Any, now: datetime) -> tuple[TaskTemplate, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CommandsConfigError("task_templates must be a list")
    templates: list[TaskTemplate] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        template = _template(item, f"task_templates[{index}]", now)
        if template.name in seen:
            raise CommandsConfigError(f"task_templates: duplicate name {template.name!r}")
        seen.add(template.name)
        templates.append(template)
    return tuple(templates)


def _template(item: Any, where: str, now: datetime) -> TaskTemplate:
    if not isinstance(item, Mapping):
        raise CommandsConfigError(f"{where} must be an object")
    name = _text(item, "name", where, required=True)
    where = f"{where} ({name!r})"
    task_type = _text(item, "type", where, required=True)
    if task_type not in TASK_TYPES:
        raise CommandsConfigError(f"{where}.type must be one of {', '.join(TASK_TYPES)}")
    schedule = _text(item, "schedule", where, required=True)
    try:
        next_run(task_type, schedule, now)
    except ScheduleError as err:
        raise CommandsConfigError(f"{where}.schedule: {err}") from err
    if "prompt" not in item and "prompt_path" in item:
        # Later upstream versions read prompts from files; inline text keeps this server from
        # reading arbitrary paths named in a config file.
        raise CommandsConfigError(f"{where}: prompt_path is not supported, give prompt inline")
    auto_delete = item.get("auto_delete_sec", 0)
    if auto_delete is None:
        auto_delete = 0
    if isinstance(auto_delete, bool) or not isinstance(auto_delete, int) or auto_delete < 0:
        raise CommandsConfigError(f"{where}.auto_delete_sec must be a non-negative integer")
    return TaskTemplate(
        name=name,
        type=task_type,
        schedule=schedule,
        prompt=_text(item, "prompt", where, required=True),
        description=_text(item, "description", where, required=False),
        auto_delete_sec=auto_delete,
    )


def _text(item: Mapping[str, Any], key: str, where: str, *, required: bool) -> str:
    value = item.get(key)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise CommandsConfigError(f"{where}.{key} must be a string")
    if required and not value.strip():
        raise CommandsConfigError(f"{where}.{key} is required")
    return value
