"""Message routes: post a user's message, read a channel's history.

A message to a channel that does not exist is ``404 channel not found`` (upstream creates the
channel and starts an agent in an empty directory; a mistyped id should not do that).
"""

from __future__ import annotations

from collections.abc import Sequence

from quart import Quart

from loop_server.api import _routes as routes
from loop_server.api._lean import (
    NO_CONTENT,
    Answer,
    LeanRequest,
    LeanRoutes,
    hot_route,
    json_bytes_answer,
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
from loop_server.gojson import go_json
from loop_server.memo import Memo
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


#: Encoded messages, keyed by the message object (by identity: the store's decoded-row memo
#: hands out the same object for the same row, and the entry keeps it alive, so its id is
#: not reused while the entry exists).
Encoded = Memo[int, tuple[Message, bytes]]
_ENCODED_ENTRIES = 8192
_ENCODED_BYTES = 16 * 1024 * 1024


def encoded_memo() -> Encoded:
    return Memo(max_entries=_ENCODED_ENTRIES, max_weight=_ENCODED_BYTES)


def _encoded(memo: Encoded, message: Message) -> bytes:
    entry = memo.get(id(message))
    if entry is not None and entry[0] is message:
        return entry[1]
    fragment = go_json(message_json(message))[:-1]  # without go_json's trailing newline
    memo.put(id(message), (message, fragment), len(fragment) * 2)
    return fragment


def page_body(memo: Encoded, page: Sequence[Message], next_cursor: int | None) -> bytes:
    """``go_json({"messages": [message_json(m) ...], "next_cursor": next_cursor})``, from each
    message's kept encoding: Go's escapes are per character inside strings, so encoding the
    messages one by one and joining them gives the same bytes."""
    cursor = b"null" if next_cursor is None else str(next_cursor).encode()
    parts = b",".join([_encoded(memo, m) for m in page])
    return b'{"messages":[' + parts + b'],"next_cursor":' + cursor + b"}\n"


def register(app: Quart, deps: ApiDeps, lean: LeanRoutes | None = None) -> None:
    encoded = encoded_memo()

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
        return json_bytes_answer(page_body(encoded, page, next_cursor))
