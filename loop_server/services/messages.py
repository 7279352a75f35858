"""The one path every message write takes: store the row, then publish ``message.created``.

Keeping the event here means no caller can forget it, and the SQL code stays free of the hub.
"""

from __future__ import annotations

import secrets

from loop_server.clock import Clock
from loop_server.platform.local import BOT_NAME, BOT_USER_ID, DEFAULT_AUTHOR
from loop_server.protocols import EventBroadcaster
from loop_server.store import MessageRepository
from loop_server.store.models import Message, NewMessage

BOT_MENTION = "@LoopBot"


def new_msg_id() -> str:
    """Locally created rows get ``ask-`` + 32 hex chars, as upstream."""
    return "ask-" + secrets.token_hex(16)


def strip_bot_mention(content: str) -> str:
    """Drop a leading ``@LoopBot`` mention (threads created over the API carry one)."""
    stripped = content.lstrip()
    if stripped.startswith(BOT_MENTION):
        rest = stripped[len(BOT_MENTION) :]
        if rest == "" or rest[0].isspace():
            return rest.strip()
    return content


class MessageService:
    """Records messages; also the local platform's ``MessageSender`` (posting as the bot)."""

    def __init__(
        self,
        repo: MessageRepository,
        broadcaster: EventBroadcaster | None,
        *,
        clock: Clock,
        platform: str,
    ) -> None:
        self._repo = repo
        self._broadcaster = broadcaster
        self._clock = clock
        self._platform = platform

    async def record(
        self, channel_id: str, author_id: str, author_name: str, content: str, *, is_bot: bool
    ) -> Message:
        """Store a message and publish it. A user's message to an unknown channel creates the
        channel on our platform (SPEC A.5 step 1); a bot's does not (``ChannelNotFound``), so a
        late reply cannot resurrect a deleted channel."""
        message = await self._repo.insert(
            NewMessage(
                channel_id=channel_id,
                msg_id=new_msg_id(),
                author_id=author_id,
                author_name=author_name,
                content=content,
                is_bot=is_bot,
                created_at=self._clock.now(),
            ),
            auto_create_platform=None if is_bot else self._platform,
        )
        if self._broadcaster is not None:
            self._broadcaster.broadcast_message_created(message)
        return message

    async def post_message(self, channel_id: str, content: str) -> None:
        await self.record(channel_id, BOT_USER_ID, BOT_NAME, content, is_bot=True)

    async def record_user_message(self, channel_id: str, author_id: str, content: str) -> Message:
        author = author_id or DEFAULT_AUTHOR
        return await self.record(
            channel_id, author, author, strip_bot_mention(content), is_bot=False
        )
