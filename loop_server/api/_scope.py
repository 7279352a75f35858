"""What an agent token may reach: its channel, that channel's threads, and nothing else.

The gateway asks ``ScopeGuard.refusal`` about every request an agent makes, before routing.
Each route an agent may use names where its channel is (the path, the query, or a body field,
decoded exactly as the route's handler decodes it); the guard finds that channel's family
(a thread belongs to its parent) and refuses anything outside the agent's own. Routes not
listed here (creating or deleting channels, slash commands, unknown paths) are refused
outright. An id the guard cannot find (an unknown task or thread) is let through: the route
then gives its usual answer (404, 204), which tells nothing about other channels.

A thread's container gets a token for the thread; the family it may act on is its parent's
(a thread works in its parent's dir on the same files, so nothing is gained by narrowing it).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from loop_server.api import memory as memory_routes
from loop_server.api import messages as message_routes
from loop_server.api import tasks as task_routes
from loop_server.api import threads as thread_routes
from loop_server.api._family import family_root
from loop_server.api._responses import ApiError
from loop_server.api._wire import BodyError, FieldKind, decode_body
from loop_server.domain import Channel
from loop_server.protocols import ChannelLister, TaskScheduler

FREE = frozenset({("GET", "/api/readme"), ("GET", "/api/openapi.json"), ("GET", "/api/health")})
# GET /api/channels is free too: the handler lists only the agent's family (``visible``).
CHANNEL_LIST = ("GET", "/api/channels")


def refusal_text(channel_id: str) -> str:
    return f"forbidden: token is scoped to channel {channel_id}"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: bytes
    body: bytes

    def query_value(self, name: str) -> str:
        values = parse_qs(self.query.decode("latin-1")).get(name)
        return values[0] if values else ""  # quart's request.args.get: the first value

    def body_fields(self, schema: Mapping[str, FieldKind] | None) -> dict[str, object] | None:
        """The body as the route's handler will decode it; None when the handler will refuse
        it as invalid (a 400 reaches the agent, nothing else happens)."""
        assert schema is not None
        try:
            return decode_body(self.body, schema)
        except BodyError:
            return None


# A checked route: its method, a path pattern, and how to find the channel it touches.
Check = Callable[["Family", Request, re.Match[str]], Awaitable[bool]]
_ROUTES: list[tuple[str, re.Pattern[str], Check]] = []


def _route(method: str, pattern: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        _ROUTES.append((method, re.compile(pattern), check))
        return check

    return register


class ScopeGuard:
    def __init__(
        self, channels: ChannelLister | None, tasks: TaskScheduler, *, loop_dir: str
    ) -> None:
        self._channels = channels
        self.tasks = tasks
        self.loop_dir = loop_dir

    async def refusal(self, scope_channel: str, request: Request) -> str | None:
        """None when an agent scoped to ``scope_channel`` may make ``request``, else the text
        of the 403."""
        key = (request.method, request.path)
        if key in FREE or key == CHANNEL_LIST:
            return None
        for method, pattern, check in _ROUTES:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                family = Family(self, await self.family_root(scope_channel))
                if await check(family, request, match):
                    return None
                break
        return refusal_text(scope_channel)

    async def family_root(self, channel_id: str) -> str:
        return await family_root(self._channels, channel_id)

    async def channel(self, channel_id: str) -> Channel | None:
        return None if self._channels is None else await self._channels.get_channel(channel_id)


class Family:
    """One request's view: the agent's family, and lookups of what the request names."""

    def __init__(self, guard: ScopeGuard, root: str) -> None:
        self.guard = guard
        self.root = root

    async def has(self, channel_id: object) -> bool:
        if not isinstance(channel_id, str) or not channel_id:
            return False
        return await self.guard.family_root(channel_id) == self.root

    async def has_task(self, text: str) -> bool:
        try:
            task_id = task_routes.parse_task_id(text)
        except ApiError:
            return True  # the route answers 400 invalid task id
        task = await self.guard.tasks.get_task(task_id)
        return task is None or await self.has(task.channel_id)

    async def has_dir(self, dir_path: str) -> bool:
        root = await self.guard.channel(self.root)
        return root is not None and root.work_dir(self.guard.loop_dir) == dir_path


async def _body_channel(
    family: Family, request: Request, schema: Mapping[str, FieldKind] | None
) -> bool:
    fields = request.body_fields(schema)
    return fields is None or await family.has(fields.get("channel_id", ""))


@_route("POST", "/api/messages")
async def _post_message(family: Family, request: Request, _: re.Match[str]) -> bool:
    return await _body_channel(family, request, message_routes.POST.body)


@_route("GET", r"/api/channels/([^/]+)/messages")
async def _history(family: Family, _: Request, match: re.Match[str]) -> bool:
    return await family.has(match[1])


@_route("POST", "/api/threads")
async def _create_thread(family: Family, request: Request, _: re.Match[str]) -> bool:
    return await _body_channel(family, request, thread_routes.CREATE.body)


@_route("DELETE", r"/api/threads/([^/]+)")
async def _delete_thread(family: Family, _: Request, match: re.Match[str]) -> bool:
    if await family.guard.channel(match[1]) is None:
        return True  # the route answers "thread ... not found"
    return await family.has(match[1])


@_route("POST", "/api/tasks")
async def _create_task(family: Family, request: Request, _: re.Match[str]) -> bool:
    return await _body_channel(family, request, task_routes.CREATE.body)


@_route("GET", "/api/tasks")
async def _list_tasks(family: Family, request: Request, _: re.Match[str]) -> bool:
    channel_id = request.query_value("channel_id")
    return not channel_id or await family.has(channel_id)  # none: the route's 400


async def _one_task(family: Family, _: Request, match: re.Match[str]) -> bool:
    return await family.has_task(match[1])


for _method, _pattern in (
    ("GET", r"/api/tasks/([^/]+)"),
    ("PATCH", r"/api/tasks/([^/]+)"),
    ("DELETE", r"/api/tasks/([^/]+)"),
    ("GET", r"/api/tasks/([^/]+)/runs"),
    ("POST", r"/api/tasks/([^/]+)/run"),
):
    _route(_method, _pattern)(_one_task)


async def _memory(family: Family, request: Request, schema: Mapping[str, FieldKind] | None) -> bool:
    fields = request.body_fields(schema)
    if fields is None:
        return True
    dir_path = fields.get("dir_path", "")
    if isinstance(dir_path, str) and dir_path:  # the route prefers dir_path to channel_id
        return await family.has_dir(dir_path)
    channel_id = fields.get("channel_id", "")
    return not channel_id or await family.has(channel_id)  # neither: the route's 400


@_route("POST", "/api/memory/search")
async def _search_memory(family: Family, request: Request, _: re.Match[str]) -> bool:
    return await _memory(family, request, memory_routes.SEARCH.body)


@_route("POST", "/api/memory/index")
async def _index_memory(family: Family, request: Request, _: re.Match[str]) -> bool:
    return await _memory(family, request, memory_routes.INDEX.body)
