"""Thread routes (SPEC §3.6–3.7)."""

from __future__ import annotations

from quart import Quart, Response

from loop_server.api import _routes as routes
from loop_server.api._responses import ApiError, empty_response, json_response, need, read_body
from loop_server.api._routes import STRING, Reply, Route, json_object, route
from loop_server.api.deps import ApiDeps
from loop_server.api.messages import LOCAL_USER

BOT_MENTION = "@LoopBot "

CREATE = Route(
    "POST",
    "/api/threads",
    "Create a thread (and start the agent on its first message)",
    body={"channel_id": "str", "name": "str", "author_id": "str", "message": "str"},
    required=("channel_id", "name"),
    replies={
        201: Reply("json", "the new thread", json_object({"thread_id": STRING})),
        400: routes.BAD_REQUEST,
        404: routes.text("parent channel not found"),
        500: routes.SERVER_ERROR,
        501: routes.NOT_CONFIGURED,
    },
)
DELETE = Route(
    "DELETE",
    "/api/threads/<thread_id>",
    "Delete a thread and its messages",
    replies={
        204: routes.NO_CONTENT,
        400: routes.text("not a thread"),
        404: routes.text("thread not found"),
        500: routes.SERVER_ERROR,
        501: routes.NOT_CONFIGURED,
    },
)


def register(app: Quart, deps: ApiDeps) -> None:
    @route(app, CREATE)
    async def create_thread() -> Response:
        threads = need(deps.threads, "thread creation not configured")
        body = await read_body(CREATE.body)
        channel_id = body.get("channel_id", "")
        name = body.get("name", "")
        if not channel_id:
            raise ApiError(400, "channel_id is required")
        if not name:
            raise ApiError(400, "name is required")
        author_id = body.get("author_id", "")
        message = body.get("message", "")
        thread_id = await threads.create_thread(channel_id, name, author_id, message)
        if deps.incoming is not None and message:
            # Mimics a bot mention on Discord/Slack, so the agent starts in the new thread.
            await deps.incoming.handle_incoming_message(
                thread_id, author_id or LOCAL_USER, BOT_MENTION + message
            )
        return json_response({"thread_id": thread_id}, status=201)

    @route(app, DELETE)
    async def delete_thread(thread_id: str) -> Response:
        threads = need(deps.threads, "thread deletion not configured")
        await threads.delete_thread(thread_id)
        return empty_response(204)
