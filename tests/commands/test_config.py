"""``task_templates`` and ``permissions`` from the config file (``Config.extra``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from loop_server.commands import CommandsConfig, CommandsConfigError, Grant, TaskTemplate

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def load(extra: dict[str, Any]) -> CommandsConfig:
    return CommandsConfig.from_extra(extra, now=NOW)


def test_absent_keys_mean_no_templates_and_no_grants() -> None:
    config = load({})
    assert config.templates == ()
    assert config.permissions.is_empty()
    assert load({"task_templates": None, "permissions": None}) == config


def test_upstream_template_shape() -> None:
    config = load(
        {
            "task_templates": [
                {
                    "name": "daily-summary",
                    "description": "Summary of the day",
                    "schedule": "0 17 * * *",
                    "type": "cron",
                    "prompt": "Summarise today's tickets.",
                },
                {
                    "name": "poll",
                    "type": "interval",
                    "schedule": "5m",
                    "prompt": "Poll.",
                    "auto_delete_sec": 600,
                    "some_later_upstream_key": True,
                },
                {
                    "name": "once",
                    "type": "once",
                    "schedule": "2020-01-01T00:00:00Z",  # a past time is accepted, as upstream
                    "prompt": "Once.",
                    "description": None,
                    "auto_delete_sec": None,
                },
            ],
            "permissions": {"owners": {"users": ["U1"]}},
        }
    )
    assert config.templates == (
        TaskTemplate(
            "daily-summary",
            "cron",
            "0 17 * * *",
            "Summarise today's tickets.",
            description="Summary of the day",
        ),
        TaskTemplate("poll", "interval", "5m", "Poll.", auto_delete_sec=600),
        TaskTemplate("once", "once", "2020-01-01T00:00:00Z", "Once."),
    )
    assert config.permissions.owners == Grant(users=("U1",))


def template(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "t", "type": "cron", "schedule": "* * * * *", "prompt": "p"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


@pytest.mark.parametrize(
    ("templates", "message"),
    [
        ({"name": "t"}, "task_templates must be a list"),
        (["t"], "task_templates[0] must be an object"),
        ([template(name=...)], "task_templates[0].name is required"),
        ([template(name="  ")], "task_templates[0].name is required"),
        ([template(name=3)], "task_templates[0].name must be a string"),
        ([template(type="weekly")], "task_templates[0] ('t').type must be one of cron, interval"),
        ([template(schedule=...)], "task_templates[0] ('t').schedule is required"),
        (
            [template(schedule="61 * * * *")],
            "task_templates[0] ('t').schedule: calculating next run: parsing cron schedule",
        ),
        (
            [template(type="interval", schedule="soon")],
            "task_templates[0] ('t').schedule: calculating next run: parsing interval",
        ),
        ([template(prompt=...)], "task_templates[0] ('t').prompt is required"),
        (
            [template(prompt=..., prompt_path="x.md")],
            "task_templates[0] ('t'): prompt_path is not supported",
        ),
        ([template(description=["x"])], "task_templates[0] ('t').description must be a string"),
        ([template(auto_delete_sec=-1)], "task_templates[0] ('t').auto_delete_sec must be"),
        ([template(auto_delete_sec=1.5)], "task_templates[0] ('t').auto_delete_sec must be"),
        ([template(auto_delete_sec=True)], "task_templates[0] ('t').auto_delete_sec must be"),
        ([template(), template()], "task_templates: duplicate name 't'"),
    ],
)
def test_malformed_templates_are_refused(templates: Any, message: str) -> None:
    with pytest.raises(CommandsConfigError) as caught:
        load({"task_templates": templates})
    assert str(caught.value).startswith(message)


def test_malformed_permissions_are_refused() -> None:
    with pytest.raises(CommandsConfigError, match="unknown key 'owner'"):
        load({"permissions": {"owner": {"users": ["U1"]}}})
