"""``POST /api/commands``: slash commands (SPEC §3.13).

The command runs in the background, as upstream: the caller gets ``204`` at once and the reply
arrives as a bot message in the channel (history and ``message.created``). A command for a
channel that does not exist is ``404 channel not found``: there would be nowhere to post its
reply (upstream answers ``204`` and the reply is lost).
"""

from __future__ import annotations

from functools import partial

from quart import Quart

from loop_server.api import _routes as routes
from loop_server.api._lean import NO_CONTENT, Answer, LeanRequest, LeanRoutes, hot_route
from loop_server.api._responses import ApiError, need
from loop_server.api._routes import Route
from loop_server.api.deps import ApiDeps
from loop_server.commands import UnknownCommand, parse_command
from loop_server.platform.local import DEFAULT_AUTHOR

POST = Route(
    "POST",
    "/api/commands",
    "Run a slash command; its reply is posted as a bot message in the channel",
    body={"channel_id": "str", "author_id": "str", "command": "str"},
    required=("channel_id", "command"),
    replies={
        204: routes.NO_CONTENT,
        400: routes.BAD_REQUEST,
        404: routes.text("channel not found"),
        503: routes.text("slash commands are not configured"),
    },
)


def register(app: Quart, deps: ApiDeps, lean: LeanRoutes | None = None) -> None:
    @hot_route(app, POST, lean)
    async def post_command(req: LeanRequest) -> Answer:
        # Read per request (it may be attached after start-up), before the body as upstream.
        handler = need(deps.interactions, "commands not configured", status=503)
        body = req.json_body(POST.body)
        channel_id = body.get("channel_id", "")
        command = body.get("command", "")
        if not channel_id:
            raise ApiError(400, "channel_id is required")
        if not command:
            raise ApiError(400, "command is required")
        try:
            interaction = parse_command(
                channel_id, body.get("author_id") or DEFAULT_AUTHOR, command
            )
        except UnknownCommand as err:
            raise ApiError(400, "unknown command") from err
        if deps.store is not None and await deps.store.get_channel(channel_id) is None:
            raise ApiError(404, "channel not found")
        await deps.background.spawn(
            partial(handler.handle_interaction, interaction),
            name=f"command {interaction.command_name} in {channel_id}",
        )
        return NO_CONTENT
