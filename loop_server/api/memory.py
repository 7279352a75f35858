"""Memory routes (SPEC §3.14–3.15): search and (re)index a project's markdown memory."""

from __future__ import annotations

import logging
import os
from typing import Any

from quart import Quart, Response

from loop_server.api import _routes as routes
from loop_server.api._responses import ApiError, json_response, need, read_body
from loop_server.api._routes import INTEGER, STRING, Reply, Route, json_object, route
from loop_server.api.channels import work_dir
from loop_server.api.deps import ApiDeps
from loop_server.protocols import MemorySearchResult

log = logging.getLogger(__name__)

NOT_CONFIGURED = "memory indexer not configured"


def check_caller_dir(dir_path: str) -> str:
    """SPEC A.2: a directory named by the caller is absolute and NUL-free, else 400."""
    if "\x00" in dir_path:
        raise ApiError(400, "dir_path must not contain NUL bytes")
    if not os.path.isabs(dir_path):
        raise ApiError(400, "dir_path must be an absolute path")
    return dir_path


async def resolve_dir(deps: ApiDeps, dir_path: str, channel_id: str) -> str:
    """Upstream's directory resolution, each failure a 400 with its text (SPEC §3.14)."""
    if dir_path:
        return check_caller_dir(dir_path)
    if not channel_id:
        raise ApiError(400, "dir_path or channel_id is required")
    if deps.store is None:
        raise ApiError(400, "channel lookup not configured")
    try:
        channel = await deps.store.get_channel(channel_id)
    except Exception as err:
        raise ApiError(400, f"looking up channel: {err}") from err
    if channel is None:
        raise ApiError(400, f"channel {channel_id} not found")
    # The same work dir as the listing and agent runs show (os.path.join would drop the loop
    # dir for a channel id that starts with "/").
    resolved = work_dir(deps, channel)
    if not resolved:
        raise ApiError(400, f"channel {channel_id} has no dir_path")
    if "\x00" in resolved or not os.path.isabs(resolved):
        # Channels store what their creator sent; the indexer only works on absolute paths.
        raise ApiError(400, f"channel {channel_id} work dir {resolved!r} is not an absolute path")
    return resolved


def result_json(result: MemorySearchResult) -> dict[str, Any]:
    item: dict[str, Any] = {"file_path": result.file_path}
    if result.content:  # Go's `json:"content,omitempty"`
        item["content"] = result.content
    item["score"] = result.score
    item["chunk_index"] = result.chunk_index
    return item


RESULT = json_object(
    {"file_path": STRING, "content": STRING, "score": {"type": "number"}, "chunk_index": INTEGER},
    optional=("content",),
)
SEARCH = Route(
    "POST",
    "/api/memory/search",
    "Search a project's memory (re-indexes first)",
    body={"query": "str", "top_k": "int", "dir_path": "str", "channel_id": "str"},
    required=("query",),
    replies={
        200: Reply(
            "json",
            "results, best first (null when nothing is indexed)",
            json_object({"results": {"type": "array", "items": RESULT, "nullable": True}}),
        ),
        400: routes.BAD_REQUEST,
        500: routes.SERVER_ERROR,
        501: routes.NOT_CONFIGURED,
    },
)
INDEX = Route(
    "POST",
    "/api/memory/index",
    "(Re)index a project's memory",
    body={"dir_path": "str", "channel_id": "str"},
    replies={
        200: Reply("json", "files (re)indexed", json_object({"count": INTEGER})),
        400: routes.BAD_REQUEST,
        500: routes.SERVER_ERROR,
        501: routes.NOT_CONFIGURED,
    },
)


def register(app: Quart, deps: ApiDeps) -> None:
    @route(app, SEARCH)
    async def search_memory() -> Response:
        memory = need(deps.memory, NOT_CONFIGURED)
        body = await read_body(SEARCH.body)
        query = body.get("query", "")
        if not query:
            raise ApiError(400, "query is required")
        dir_path = await resolve_dir(deps, body.get("dir_path", ""), body.get("channel_id", ""))
        try:
            results = await memory.search(dir_path, query, body.get("top_k", 0))
        except Exception as err:
            log.exception("memory search in %s failed", dir_path)
            raise ApiError(500, str(err) or type(err).__name__) from err
        if not results:
            # Upstream's nil slice: Go appends matches to a nil slice, so an empty answer is
            # always ``null`` there (nothing indexed or nothing matched); one shape for both.
            return json_response({"results": None})
        return json_response({"results": [result_json(r) for r in results]})

    @route(app, INDEX)
    async def index_memory() -> Response:
        memory = need(deps.memory, NOT_CONFIGURED)
        body = await read_body(INDEX.body)
        dir_path = await resolve_dir(deps, body.get("dir_path", ""), body.get("channel_id", ""))
        try:
            count = await memory.index(dir_path)
        except Exception as err:
            log.exception("memory index of %s failed", dir_path)
            raise ApiError(500, str(err) or type(err).__name__) from err
        return json_response({"count": count})
