"""Message routes: post a user's message, read a channel's history.

A message to a channel that does not exist is ``404 channel not found`` (upstream creates the
channel and starts an agent in an empty directory; a mistyped id should not do that).
"""

from __future__ import annotations

from quart import Quart

from loop_server.api import _routes as routes
from loop_server.api._lean import (
    NO_CONTENT,
    Answer,
    LeanRequest,
    LeanRoutes,
    hot_route,
    json_answer,
)
from loop_server.api._params import cut_page, page_params
from loop_server.api._responses import ApiError, need
from loop_server.api._routes import (
    BOOLEAN,
    INTEGER,
    PAGE_QUERY,
    STRING,
    Route,
    json_object,
    page_reply,
)
from loop_server.api.deps import ApiDeps
from loop_server.domain import Message
from loop_server.timefmt import rfc3339

LOCAL_USER = "local-user"

MESSAGE = json_object(
    {
        "id": INTEGER,
        "channel_id": STRING,
        "msg_id": STRING,
        "author_id": STRING,
        "author_name": STRING,
        "content": STRING,
        "is_bot": BOOLEAN,
        "created_at": {"type": "string", "format": "date-time"},
    }
)
POST = Route(
    "POST",
    "/api/messages",
    "Post a user's message (stored, then an agent run is queued)",
    body={"channel_id": "str", "content": "str"},
    required=("channel_id", "content"),
    replies={
        204: routes.NO_CONTENT,
        400: routes.BAD_REQUEST,
        404: routes.text("channel not found"),
        500: routes.SERVER_ERROR,
        501: routes.NOT_CONFIGURED,
    },
)
HISTORY = Route(
    "GET",
    "/api/channels/<channel_id>/messages",
    "Message history, newest first",
    query=PAGE_QUERY,
    replies={
        200: page_reply("messages", MESSAGE, "a page of messages"),
        400: routes.BAD_REQUEST,
        501: routes.NOT_CONFIGURED,
    },
)


def message_json(message: Message) -> dict[str, object]:
    return {
        "id": message.id,
        "channel_id": message.channel_id,
        "msg_id": message.msg_id,
        "author_id": message.author_id,
        "author_name": message.author_name,
        "content": message.content,
        "is_bot": message.is_bot,
        "created_at": rfc3339(message.created_at),
    }


def register(app: Quart, deps: ApiDeps, lean: LeanRoutes | None = None) -> None:
    @hot_route(app, POST, lean)
    async def post_message(req: LeanRequest) -> Answer:
        body = req.json_body(POST.body)
        channel_id = body.get("channel_id", "")
        content = body.get("content", "")
        if not channel_id:
            raise ApiError(400, "channel_id is required")
        if not content:
            raise ApiError(400, "content is required")
        if deps.incoming is not None:
            # Returns once the message is stored; the agent run goes on in the background.
            await deps.incoming.handle_incoming_message(channel_id, LOCAL_USER, content)
            return NO_CONTENT
        messages = need(deps.messages, "message sending not configured")
        await messages.post_message(channel_id, content)
        return NO_CONTENT

    @hot_route(app, HISTORY, lean)
    async def history(req: LeanRequest, channel_id: str) -> Answer:
        store = need(deps.store, "message listing not configured")
        limit, cursor = page_params(req.args)
        rows = await store.get_messages_cursor(channel_id, cursor, limit + 1)
        page, next_cursor = cut_page(rows, limit)
        return json_answer(
            {"messages": [message_json(m) for m in page], "next_cursor": next_cursor}
        )
