"""Channel routes (SPEC §3.1–3.3, §3.17)."""

from __future__ import annotations

import logging
from typing import Any

import trio
from quart import Quart, Response

from loop_server.access import CALLER
from loop_server.api import _routes as routes
from loop_server.api._family import sees_all, visible_to
from loop_server.api._lean import (
    Answer,
    LeanRequest,
    LeanRoutes,
    hot_route,
    json_answer,
    json_bytes_answer,
)
from loop_server.api._responses import (
    ApiError,
    empty_response,
    json_response,
    need,
    read_body,
)
from loop_server.api._routes import BOOLEAN, STRING, Reply, Route, json_object, route
from loop_server.api.deps import ApiDeps
from loop_server.domain import Channel
from loop_server.gojson import go_json

log = logging.getLogger(__name__)

LOOKUP_DEADLINE = 3.0  # seconds the listing waits for Docker or git before answering without

NOT_CONFIGURED = (
    "channel creation not configured (discord_guild_id not set or Slack not configured)"
)

CHANNEL_ID = json_object({"channel_id": STRING})
CHANNEL_ITEM = json_object(
    {
        "channel_id": STRING,
        "name": STRING,
        "dir_path": STRING,
        "parent_id": STRING,
        "active": BOOLEAN,
        "container_running": BOOLEAN,
        "agent_running": BOOLEAN,
        "branch": STRING,
    },
    optional=("branch",),
)
LIST = Route(
    "GET",
    "/api/channels",
    "List channels and threads (ordered by name)",
    query={"query": "string"},
    replies={
        200: Reply("json", "the channels", {"type": "array", "items": CHANNEL_ITEM}),
        501: routes.NOT_CONFIGURED,
    },
)
ENSURE = Route(
    "POST",
    "/api/channels",
    "The channel of a directory, created if new",
    body={"dir_path": "str"},
    required=("dir_path",),
    replies={
        200: Reply("json", "the channel", CHANNEL_ID),
        400: routes.BAD_REQUEST,
        500: routes.SERVER_ERROR,
        501: routes.NOT_CONFIGURED,
    },
)
CREATE = Route(
    "POST",
    "/api/channels/create",
    "Create a named channel",
    body={"name": "str", "author_id": "str"},
    required=("name",),
    replies={
        201: Reply("json", "the new channel", CHANNEL_ID),
        400: routes.BAD_REQUEST,
        500: routes.SERVER_ERROR,
        501: routes.NOT_CONFIGURED,
    },
)
DELETE = Route(
    "DELETE",
    "/api/channels/<channel_id>",
    "Delete a channel, its threads and their messages",
    replies={
        204: routes.NO_CONTENT,
        404: routes.text("channel not found"),
        501: routes.NOT_CONFIGURED,
    },
)


def work_dir(deps: ApiDeps, channel: Channel) -> str:
    """The channel's dir path, or the loop dir fallback (§3.1 step 7; a thread's is its
    parent's, docs/decisions.md)."""
    return channel.work_dir(deps.loop_dir)


def register(app: Quart, deps: ApiDeps, lean: LeanRoutes | None = None) -> None:
    listing = _Listing()

    @hot_route(app, LIST, lean)
    async def list_channels(req: LeanRequest) -> Answer:
        store = need(deps.store, "channel listing not configured")
        channels = await store.list_channels()
        running: set[str] = set()
        if deps.running_channels is not None:
            # A dead or stuck Docker engine must not break or stall the listing.
            with trio.move_on_after(LOOKUP_DEADLINE) as lookup:
                try:
                    running = await deps.running_channels.running_channel_ids()
                except Exception as err:
                    log.warning("failed to list running channels: %s", err)
            if lookup.cancelled_caught:
                log.warning("failed to list running channels: no answer in %ss", LOOKUP_DEADLINE)
        active = deps.active_chats.active_chat_channel_ids() if deps.active_chats else set()
        query = req.args.get("query", "").lower()
        caller = req.scope.get(CALLER)
        if not query and sees_all(caller):
            # The whole listing (the usual request): its rows, dirs and answer are kept.
            shown, dirs = listing.rows(deps, channels)
            branches = await _branches(deps, dirs)
            return listing.answer(shown, dirs, branches, running, active)
        # An agent sees its own channel and threads only (docs/mcp.md).
        visible = await visible_to(caller, store)
        shown = [
            c
            for c in channels
            if (not query or query in c.name.lower())
            and (not deps.platform or c.platform == deps.platform)
            and visible(c)
        ]
        dirs = [work_dir(deps, c) for c in shown]
        branches = await _branches(deps, dirs)
        return json_answer(_items(shown, dirs, branches, running, active))

    @route(app, ENSURE)
    async def ensure_channel() -> Response:
        channels = need(deps.channels, NOT_CONFIGURED)
        body = await read_body(ENSURE.body)
        dir_path = body.get("dir_path", "")
        if not dir_path:
            raise ApiError(400, "dir_path is required")
        channel_id = await channels.ensure_channel(dir_path)
        return json_response({"channel_id": channel_id})

    @route(app, CREATE)
    async def create_channel() -> Response:
        channels = need(deps.channels, NOT_CONFIGURED)
        body = await read_body(CREATE.body)
        name = body.get("name", "")
        if not name:
            raise ApiError(400, "name is required")
        channel_id = await channels.create_channel(name, body.get("author_id", ""))
        return json_response({"channel_id": channel_id}, status=201)

    @route(app, DELETE)
    async def delete_channel(channel_id: str) -> Response:
        store = need(deps.store, "channel deletion not configured")
        if await store.get_channel(channel_id) is None:
            raise ApiError(404, "channel not found")
        await store.delete_channel(channel_id)
        return empty_response(204)


async def _branches(deps: ApiDeps, dirs: list[str]) -> list[str]:
    """Git branches of all listed dirs (read from their HEAD files, not by forking git)."""
    reader = deps.branches
    if reader is None:
        return [""] * len(dirs)
    # Branches are decoration: past the deadline they are all left empty.
    with trio.move_on_after(LOOKUP_DEADLINE):
        return await reader.current_branches(dirs)
    return [""] * len(dirs)


def _items(
    shown: list[Channel],
    dirs: list[str],
    branches: list[str],
    running: set[str],
    active: set[str],
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for channel, dir_path, branch in zip(shown, dirs, branches, strict=True):
        item: dict[str, Any] = {
            "channel_id": channel.channel_id,
            "name": channel.name,
            "dir_path": dir_path,
            "parent_id": channel.parent_id,
            "active": channel.active,
            "container_running": channel.channel_id in running,
            "agent_running": channel.channel_id in active,
        }
        if branch:
            item["branch"] = branch
        items.append(item)
    return items


class _Listing:
    """The whole listing's last answer and what it was made of (issue 15: the same cost for 1
    or 500 channels). It is answered again while nothing it shows has changed:

    * the rows: ``ChannelLister.list_channels`` returns the very same list until a write to the
      channels' rows (it keys on the store's ``ChannelsGeneration``), so identity tells;
    * the dirs: derived from the rows (and the fixed loop dir / platform), kept with them; the
      same list object is passed to the branch reader, which answers a repeated list from
      memory for up to ``BRANCH_MAX_AGE_SEC`` and then reads the ``HEAD`` files again;
    * the branches, running containers and running agents: compared by value (a few strings,
      a set of the few running channels).
    """

    def __init__(self) -> None:
        self._channels: list[Channel] | None = None
        self._shown: list[Channel] = []
        self._dirs: list[str] = []
        self._key: tuple[list[Channel], list[str], list[str], set[str], set[str]] | None = None
        self._answer: Answer | None = None
        # Each channel's encoded item with what it was made of: when the answer must be made
        # again (a container started, an agent run ended, a row changed), only the items that
        # changed are encoded again.
        self._items: dict[str, tuple[tuple[object, ...], bytes]] = {}

    def rows(self, deps: ApiDeps, channels: list[Channel]) -> tuple[list[Channel], list[str]]:
        if channels is not self._channels:
            shown = [c for c in channels if not deps.platform or c.platform == deps.platform]
            self._shown, self._dirs = shown, [work_dir(deps, c) for c in shown]
            self._channels = channels
        return self._shown, self._dirs

    def answer(
        self,
        shown: list[Channel],
        dirs: list[str],
        branches: list[str],
        running: set[str],
        active: set[str],
    ) -> Answer:
        key = self._key
        if (
            self._answer is not None
            and key is not None
            and key[0] is shown
            and key[1] is dirs
            and key[2] == branches
            and key[3] == running
            and key[4] == active
        ):
            return self._answer
        answer = json_bytes_answer(self._body(shown, dirs, branches, running, active))
        self._key, self._answer = (shown, dirs, branches, set(running), set(active)), answer
        return answer

    def _body(
        self,
        shown: list[Channel],
        dirs: list[str],
        branches: list[str],
        running: set[str],
        active: set[str],
    ) -> bytes:
        """``go_json(_items(...))`` from the kept items: Go's escapes are per character inside
        strings, so encoding the items one by one and joining them gives the same bytes."""
        kept = self._items
        fresh: dict[str, tuple[tuple[object, ...], bytes]] = {}
        parts: list[bytes] = []
        for channel, dir_path, branch in zip(shown, dirs, branches, strict=True):
            cid = channel.channel_id
            made_of = (
                channel.name,
                channel.parent_id,
                channel.active,
                dir_path,
                branch,
                cid in running,
                cid in active,
            )
            entry = kept.get(cid)
            if entry is None or entry[0] != made_of:
                [item] = _items([channel], [dir_path], [branch], running, active)
                entry = (made_of, go_json(item)[:-1])  # without go_json's trailing newline
            fresh[cid] = entry
            parts.append(entry[1])
        self._items = fresh  # only the channels listed now: deleted ones are dropped
        return b"[" + b",".join(parts) + b"]\n"
