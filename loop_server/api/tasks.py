"""Scheduled-task routes: upstream's, plus run history and run-now.

Unlike upstream, nonsense is refused (the checks live in ``services.tasks``): an unknown channel
is ``404 channel not found``, an empty prompt or negative ``auto_delete_sec`` a 400, and
``PATCH``/``DELETE`` of an unknown task ``404 task not found`` as ``GET`` answers.
"""

from __future__ import annotations

from typing import Any

from quart import Quart, Response, request

from loop_server.api import _routes as routes
from loop_server.api._lean import Answer, LeanRequest, LeanRoutes, hot_route, json_answer
from loop_server.api._params import cut_page, page_params
from loop_server.api._responses import ApiError, empty_response, json_response, read_body
from loop_server.api._routes import (
    BOOLEAN,
    INTEGER,
    PAGE_QUERY,
    STRING,
    Reply,
    Route,
    json_object,
    page_reply,
    route,
)
from loop_server.api.deps import ApiDeps
from loop_server.domain import Task, TaskRun
from loop_server.protocols import TaskEdit
from loop_server.schedule_math import ScheduleError
from loop_server.services.errors import TaskAlreadyRunning, TaskNotFound
from loop_server.timefmt import rfc3339

_INT64_MAX = 2**63 - 1

TASK = json_object(
    {
        "id": INTEGER,
        "channel_id": STRING,
        "schedule": STRING,
        "type": STRING,
        "prompt": STRING,
        "enabled": BOOLEAN,
        "next_run_at": {"type": "string", "format": "date-time"},
        "template_name": STRING,
        "auto_delete_sec": INTEGER,
    },
    optional=("template_name",),
)
RUN = json_object(
    {
        "id": INTEGER,
        "task_id": INTEGER,
        "status": {"type": "string", "enum": ["running", "success", "failed", "skipped"]},
        "response_text": STRING,
        "error_text": STRING,
        "started_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": "string", "format": "date-time", "nullable": True},
    }
)
BAD_ID = routes.text("invalid task id (or another invalid request)")
CREATE = Route(
    "POST",
    "/api/tasks",
    "Schedule a task (cron, interval or once)",
    body={
        "channel_id": "str",
        "schedule": "str",
        "type": "str",
        "prompt": "str",
        "auto_delete_sec": "int",
        "template_name": "str",
    },
    replies={
        201: Reply("json", "the new task", json_object({"id": INTEGER})),
        400: routes.text("invalid body, missing channel_id or prompt, schedule or type"),
        404: routes.text("channel not found"),
        500: routes.SERVER_ERROR,
    },
)
LIST = Route(
    "GET",
    "/api/tasks",
    "Tasks of a channel, by next run",
    query={"channel_id": "string"},
    replies={
        200: Reply("json", "the tasks", {"type": "array", "items": TASK}),
        400: routes.text("channel_id query parameter required"),
    },
)
GET = Route(
    "GET",
    "/api/tasks/<task_id>",
    "One task",
    replies={200: Reply("json", "the task", TASK), 400: BAD_ID, 404: routes.text("task not found")},
)
DELETE = Route(
    "DELETE",
    "/api/tasks/<task_id>",
    "Delete a task and its run log",
    replies={204: routes.NO_CONTENT, 400: BAD_ID, 404: routes.text("task not found")},
)
PATCH = Route(
    "PATCH",
    "/api/tasks/<task_id>",
    "Enable/disable and/or edit a task",
    body={
        "enabled": "bool",
        "schedule": "str",
        "type": "str",
        "prompt": "str",
        "auto_delete_sec": "int",
    },
    replies={
        200: Reply("empty", "updated"),
        400: BAD_ID,
        404: routes.text("task not found"),
        500: routes.SERVER_ERROR,
    },
)
RUNS = Route(
    "GET",
    "/api/tasks/<task_id>/runs",
    "Run history of a task, newest first",
    query=PAGE_QUERY,
    replies={
        200: page_reply("runs", RUN, "a page of runs"),
        400: BAD_ID,
        404: routes.text("task not found"),
    },
)
RUN_NOW = Route(
    "POST",
    "/api/tasks/<task_id>/run",
    "Run a task now",
    body_required=False,
    replies={
        202: Reply("json", "the run started", json_object({"run_id": INTEGER})),
        400: BAD_ID,
        404: routes.text("task not found"),
        409: routes.text("task is already running"),
    },
)


def task_json(task: Task) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": task.id,
        "channel_id": task.channel_id,
        "schedule": task.schedule,
        "type": task.type,
        "prompt": task.prompt,
        "enabled": task.enabled,
        "next_run_at": rfc3339(task.next_run_at),
    }
    if task.template_name:
        item["template_name"] = task.template_name
    item["auto_delete_sec"] = task.auto_delete_sec
    return item


def run_json(run: TaskRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "task_id": run.task_id,
        "status": run.status,
        "response_text": run.response_text,
        "error_text": run.error_text,
        "started_at": rfc3339(run.started_at),
        "finished_at": None if run.finished_at is None else rfc3339(run.finished_at),
    }


def parse_task_id(text: str) -> int:
    """Go's ``strconv.ParseInt(id, 10, 64)``; failure is ``400 invalid task id``."""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit():
        raise ApiError(400, "invalid task id")
    value = int(text)
    if not -(2**63) <= value <= _INT64_MAX:
        raise ApiError(400, "invalid task id")
    return value


def register(app: Quart, deps: ApiDeps, lean: LeanRoutes | None = None) -> None:
    scheduler = deps.scheduler

    @hot_route(app, CREATE, lean)
    async def create_task(req: LeanRequest) -> Answer:
        body = req.json_body(CREATE.body)
        try:
            task_id = await scheduler.add_task(
                body.get("channel_id", ""),
                body.get("schedule", ""),
                body.get("type", ""),
                body.get("prompt", ""),
                auto_delete_sec=body.get("auto_delete_sec", 0),
                template_name=body.get("template_name", ""),
            )
        except ScheduleError as err:  # a client error here, unlike upstream's 500 (A.3)
            raise ApiError(400, str(err)) from err
        return json_answer({"id": task_id}, status=201)

    @route(app, LIST)
    async def list_tasks() -> Response:
        channel_id = request.args.get("channel_id", "")
        if not channel_id:
            raise ApiError(400, "channel_id query parameter required")
        tasks = await scheduler.list_tasks(channel_id)
        return json_response([task_json(t) for t in tasks])

    @hot_route(app, GET, lean)
    async def get_task(req: LeanRequest, task_id: str) -> Answer:
        task = await scheduler.get_task(parse_task_id(task_id))
        if task is None:
            raise ApiError(404, "task not found")
        return json_answer(task_json(task))

    @route(app, DELETE)
    async def delete_task(task_id: str) -> Response:
        try:
            await scheduler.remove_task(parse_task_id(task_id))
        except TaskNotFound as err:
            raise ApiError(404, "task not found") from err
        return empty_response(204)

    @route(app, PATCH)
    async def patch_task(task_id: str) -> Response:
        ident = parse_task_id(task_id)
        body = await read_body(PATCH.body)
        if not body:
            raise ApiError(400, "at least one field is required")
        edit = TaskEdit(
            schedule=body.get("schedule"),
            type=body.get("type"),
            prompt=body.get("prompt"),
            auto_delete_sec=body.get("auto_delete_sec"),
        )
        try:
            await scheduler.update_task(ident, body.get("enabled"), edit)
        except ScheduleError as err:
            raise ApiError(400, str(err)) from err
        except TaskNotFound as err:
            raise ApiError(404, "task not found") from err
        return empty_response(200)

    @route(app, RUNS)
    async def list_runs(task_id: str) -> Response:
        ident = parse_task_id(task_id)
        limit, cursor = page_params(request.args)
        try:
            runs = await scheduler.list_runs(ident, cursor, limit + 1)
        except TaskNotFound as err:
            raise ApiError(404, "task not found") from err
        page, next_cursor = cut_page(runs, limit)
        return json_response({"runs": [run_json(r) for r in page], "next_cursor": next_cursor})

    @route(app, RUN_NOW)
    async def run_task(task_id: str) -> Response:
        ident = parse_task_id(task_id)
        try:
            run_id = await scheduler.run_now(ident)
        except TaskNotFound as err:
            raise ApiError(404, "task not found") from err
        except TaskAlreadyRunning as err:
            raise ApiError(409, str(err)) from err
        return json_response({"run_id": run_id}, status=202)
