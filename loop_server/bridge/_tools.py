"""The bridge's tools: upstream Loop's names, parameters, descriptions and reply texts.

Each tool is one call to the HTTP API for the bridge's channel. Whatever goes wrong (a refused
or failed call, an answer of the wrong shape, an argument the API rejects) comes back to the
model as an error result with upstream's text; nothing a caller sends can end the bridge.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent
from pydantic import Field

from loop_server.bridge._api import Failure, LoopApi
from loop_server.commands import prompt_preview
from loop_server.schedule_math import parse_go_duration, parse_rfc3339

DEFAULT_TOP_K = 5

SCHEDULE_TASK = (
    "Create a scheduled task. Use cron expressions (e.g. '0 9 * * *' for daily at 9am) with "
    "type 'cron', Go time.Duration (e.g. '5m', '1h') with type 'interval', or RFC3339 "
    "timestamp (e.g. '2026-02-09T14:30:00Z') with type 'once' for one-time execution. When "
    "using 'once', first check the user's local time to compute the correct offset. Prefer "
    "RFC3339 timestamps for absolute scheduling."
)
DESCRIPTIONS = {
    "schedule_task": SCHEDULE_TASK,
    "list_tasks": "List all scheduled tasks for this channel.",
    "show_task": "Show full details of a scheduled task by its ID, including the complete "
    "prompt text.",
    "cancel_task": "Cancel a scheduled task by its ID.",
    "toggle_task": "Enable or disable a scheduled task by its ID.",
    "edit_task": "Edit a scheduled task's schedule, type, and/or prompt.",
    "create_channel": "Create a new channel. The channel will be registered and the bot will "
    "auto-join it.",
    "create_thread": "Create a new thread in the current channel. The thread will be registered "
    "and the bot will auto-join it. If a message is provided, the bot posts it as a "
    "self-mention to trigger a runner immediately with that task.",
    "delete_thread": "Delete a thread by its ID. This removes the thread from the platform and "
    "the database.",
    "search_channels": "Search for channels and threads. Returns channel IDs, names, directory "
    "paths, and active status. Use the query parameter to filter by name.",
    "send_message": "Send a message to a channel or thread. Use search_channels to find the "
    "target channel ID first. To trigger the bot in the target channel, include @BotName "
    "(e.g. @LoopBot) as plain text in the message — it will be converted to a proper mention "
    "automatically.",
    "get_readme": "Get the Loop README documentation. Returns the full project README with "
    "setup instructions, configuration, commands, and architecture details.",
    "search_memory": "Semantic search across memory files. Returns the most relevant chunks "
    "ranked by similarity to the query.",
    "index_memory": "Force re-index all memory files. Useful after editing memory files to "
    "update the search index.",
}

SCHEDULE = "Cron expression (e.g. 0 9 * * *), Go time.Duration (e.g. 5m, 1h), or RFC3339 "
SCHEDULE += "timestamp (e.g. 2026-02-09T14:30:00Z) for once type"
NEW_SCHEDULE = "New schedule expression (cron, Go time.Duration, or RFC3339 timestamp for once "
NEW_SCHEDULE += "type)"
AUTO_DELETE = "Seconds after execution to auto-delete the thread (0 = disabled)"

Schedule = Annotated[str, Field(description=SCHEDULE)]
TaskType = Annotated[str, Field(description="Task type: cron, interval, or once")]
Prompt = Annotated[str, Field(description="The prompt to execute on schedule")]
AutoDelete = Annotated[int, Field(description=AUTO_DELETE)]


ShowId = Annotated[int, Field(description="The ID of the task to show")]
CancelId = Annotated[int, Field(description="The ID of the task to cancel")]
ToggleId = Annotated[int, Field(description="The ID of the task to enable or disable")]
EditId = Annotated[int, Field(description="The ID of the task to edit")]


def reply(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)])


def error_reply(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def schedule_problem(task_type: str, schedule: str) -> str | None:
    """Upstream's check of ``once`` and ``interval`` schedules before the call (its texts)."""
    if task_type == "once":
        try:
            parse_rfc3339(schedule)
        except ValueError as err:
            return (
                'invalid schedule for type "once": must be RFC3339 (e.g. '
                f"2026-02-09T14:30:00Z): {err}"
            )
    elif task_type == "interval":
        try:
            parse_go_duration(schedule)
        except ValueError as err:
            return (
                'invalid schedule for type "interval": must be a valid Go time.Duration '
                f"(e.g. 5m, 1h, 24h): {err}"
            )
    return None


def _go_bool(value: object) -> str:
    return "true" if value else "false"


def task_line(task: dict[str, Any]) -> str:
    line = (
        f"- ID {task['id']}: {prompt_preview(str(task.get('prompt', '')))} "
        f"(schedule: {task.get('schedule', '')}, type: {task.get('type', '')}, "
        f"enabled: {_go_bool(task.get('enabled'))}"
    )
    if task.get("template_name"):
        line += f", template_name: {task['template_name']}"
    auto_delete = task.get("auto_delete_sec") or 0
    if isinstance(auto_delete, int) and auto_delete > 0:
        line += f", auto_delete: {auto_delete}s"
    return line + ")\n"


def task_details(task: dict[str, Any]) -> str:
    lines = [
        f"Task {task['id']}",
        f"Type: {task.get('type', '')}",
        f"Schedule: {task.get('schedule', '')}",
        f"Status: {'enabled' if task.get('enabled') else 'disabled'}",
        f"Next run: {task.get('next_run_at', '')}",
    ]
    if task.get("template_name"):
        lines.append(f"Template: {task['template_name']}")
    auto_delete = task.get("auto_delete_sec") or 0
    if isinstance(auto_delete, int) and auto_delete > 0:
        lines.append(f"Auto-delete: {auto_delete}s")
    return "\n".join(lines) + f"\n\nPrompt:\n{task.get('prompt', '')}"


def channel_line(channel: dict[str, Any]) -> str:
    kind = "thread" if channel.get("parent_id") else "channel"
    return (
        f"- {channel.get('name', '')} [{kind}] (ID: {channel['channel_id']}, "
        f"dir: {channel.get('dir_path', '')}, active: {_go_bool(channel.get('active'))})\n"
    )


def memory_results(results: list[dict[str, Any]]) -> str:
    parts = []
    for number, result in enumerate(results, start=1):
        part = f"## Result {number} (score: {float(result.get('score', 0)):.3f})\n"
        part += f"**File:** {result['file_path']}\n"
        content = result.get("content") or ""
        part += f"\n{content}\n\n" if content else "\n"
        parts.append(part)
    return "".join(parts)


ToolFn = Callable[..., Awaitable[CallToolResult]]


def guarded(fn: ToolFn) -> ToolFn:
    """A tool whose failures are error results: a refused call (``Failure``) with its text, an
    answer of the wrong shape as upstream's ``decoding response``."""

    @functools.wraps(fn)  # the SDK reads the tool's parameters through __wrapped__
    async def tool(*args: Any, **kwargs: Any) -> CallToolResult:
        try:
            return await fn(*args, **kwargs)
        except Failure as failure:
            return error_reply(str(failure))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            return error_reply(f"decoding response: unexpected answer ({type(err).__name__})")

    return tool


def build_server(channel_id: str, api: LoopApi, *, author_id: str = "") -> MCPServer:
    """The MCP server named ``loop`` with the fourteen tools, acting for ``channel_id``."""
    server = MCPServer(name="loop", version="1.0.0", log_level="WARNING")

    def tool(fn: ToolFn) -> ToolFn:
        name = fn.__name__
        server.add_tool(guarded(fn), name=name, description=DESCRIPTIONS[name])
        return fn

    @tool
    async def schedule_task(
        schedule: Schedule, type: TaskType, prompt: Prompt, auto_delete_sec: AutoDelete = 0
    ) -> CallToolResult:
        problem = schedule_problem(type, schedule)
        if problem:
            return error_reply(problem)
        body = {
            "channel_id": channel_id,
            "schedule": schedule,
            "type": type,
            "prompt": prompt,
            "auto_delete_sec": auto_delete_sec,
        }
        created = await api.call_json("POST", "/api/tasks", 201, body)
        return reply(f"Task scheduled successfully (ID: {int(created['id'])}).")

    @tool
    async def list_tasks() -> CallToolResult:
        tasks = await api.call_json("GET", "/api/tasks", 200, params={"channel_id": channel_id})
        if not tasks:
            return reply("No scheduled tasks.")
        return reply("".join(task_line(task) for task in tasks))

    @tool
    async def show_task(task_id: ShowId) -> CallToolResult:
        task = await api.call_json("GET", f"/api/tasks/{task_id}", 200)
        return reply(task_details(task))

    @tool
    async def cancel_task(task_id: CancelId) -> CallToolResult:
        await api.call("DELETE", f"/api/tasks/{task_id}", 204)
        return reply(f"Task {task_id} cancelled successfully.")

    @tool
    async def toggle_task(
        task_id: ToggleId,
        enabled: Annotated[
            bool, Field(description="Whether to enable (true) or disable (false) the task")
        ],
    ) -> CallToolResult:
        await api.call("PATCH", f"/api/tasks/{task_id}", 200, {"enabled": enabled})
        return reply(f"Task {task_id} {'enabled' if enabled else 'disabled'}.")

    @tool
    async def edit_task(
        task_id: EditId,
        schedule: Annotated[str | None, Field(description=NEW_SCHEDULE)] = None,
        type: Annotated[
            str | None, Field(description="New task type: cron, interval, or once")
        ] = None,
        prompt: Annotated[
            str | None, Field(description="New prompt to execute on schedule")
        ] = None,
        auto_delete_sec: Annotated[int | None, Field(description=AUTO_DELETE)] = None,
    ) -> CallToolResult:
        fields: dict[str, object] = {
            "schedule": schedule,
            "type": type,
            "prompt": prompt,
            "auto_delete_sec": auto_delete_sec,
        }
        body = {name: value for name, value in fields.items() if value is not None}
        if not body:
            return error_reply(
                "at least one of schedule, type, prompt, or auto_delete_sec is required"
            )
        if schedule is not None and type is not None:
            problem = schedule_problem(type, schedule)
            if problem:
                return error_reply(problem)
        await api.call("PATCH", f"/api/tasks/{task_id}", 200, body)
        return reply(f"Task {task_id} updated successfully.")

    @tool
    async def create_channel(
        name: Annotated[str, Field(description="The name for the new channel")],
    ) -> CallToolResult:
        if not name:
            return error_reply("name is required")
        body = {"name": name}
        if author_id:
            body["author_id"] = author_id
        created = await api.call_json("POST", "/api/channels/create", 201, body)
        return reply(f"Channel created successfully (ID: {created['channel_id']}).")

    @tool
    async def create_thread(
        name: Annotated[str, Field(description="The name for the new thread")],
        message: Annotated[
            str,
            Field(
                description="Optional initial message for the thread. If provided, the bot "
                "will post it as a self-mention to trigger a runner immediately."
            ),
        ] = "",
    ) -> CallToolResult:
        if not name:
            return error_reply("name is required")
        body = {"channel_id": channel_id, "name": name}
        if author_id:
            body["author_id"] = author_id
        if message:
            body["message"] = message
        created = await api.call_json("POST", "/api/threads", 201, body)
        return reply(f"Thread created successfully (ID: {created['thread_id']}).")

    @tool
    async def delete_thread(
        thread_id: Annotated[str, Field(description="The ID of the thread to delete")],
    ) -> CallToolResult:
        if not thread_id:
            return error_reply("thread_id is required")
        await api.call("DELETE", f"/api/threads/{_segment(thread_id)}", 204)
        return reply(f"Thread {thread_id} deleted successfully.")

    @tool
    async def search_channels(
        query: Annotated[
            str,
            Field(description="Optional search term to filter channels and threads by name"),
        ] = "",
    ) -> CallToolResult:
        params = {"query": query} if query else None
        channels = await api.call_json("GET", "/api/channels", 200, params=params)
        if not channels:
            return reply("No channels found.")
        return reply("".join(channel_line(channel) for channel in channels))

    @tool
    async def send_message(
        channel_id: Annotated[
            str, Field(description="The channel or thread ID to send the message to")
        ],
        content: Annotated[str, Field(description="The message content to send")],
    ) -> CallToolResult:
        if not channel_id:
            return error_reply("channel_id is required")
        if not content:
            return error_reply("content is required")
        body = {"channel_id": channel_id, "content": content}
        await api.call("POST", "/api/messages", 204, body)
        return reply("Message sent successfully.")

    @tool
    async def get_readme() -> CallToolResult:
        raw = await api.call("GET", "/api/readme", 200)
        return reply(raw.decode("utf-8", errors="replace"))

    @tool
    async def search_memory(
        query: Annotated[str, Field(description="The search query to find relevant memory notes")],
        top_k: Annotated[
            int, Field(description="Number of results to return (default 5)")
        ] = DEFAULT_TOP_K,
    ) -> CallToolResult:
        if not query:
            return error_reply("query is required")
        body = {"query": query, "top_k": top_k if top_k > 0 else DEFAULT_TOP_K}
        body["channel_id"] = channel_id
        found = await api.call_json("POST", "/api/memory/search", 200, body)
        results = found.get("results") or []
        if not results:
            return reply("No results found.")
        return reply(memory_results(results))

    @tool
    async def index_memory() -> CallToolResult:
        indexed = await api.call_json("POST", "/api/memory/index", 200, {"channel_id": channel_id})
        return reply(f"Indexed {int(indexed['count'])} chunks.")

    return server


def _segment(value: str) -> str:
    """``value`` as one path segment: a thread id with ``/`` or ``?`` in it must not reach
    another route."""
    return quote(value, safe="")
