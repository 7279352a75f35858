"""The one path every message write takes: store the row, then publish ``message.created``.

Keeping the event here means no caller can forget it, and the SQL code stays free of the hub.
"""

from __future__ import annotations

import re
import secrets

from loop_server.clock import Clock
from loop_server.domain import Message, NewMessage
from loop_server.platform.local import BOT_NAME, BOT_USER_ID, DEFAULT_AUTHOR
from loop_server.protocols import EventBroadcaster
from loop_server.services.errors import NotFound
from loop_server.store import MessageRepository
from loop_server.store.errors import ChannelNotFound

BOT_MENTION = "@LoopBot"
COMMAND_PREFIX = "!loop"
# Whole words only, any case: "@loopbot," is a mention; "@LoopBotter" and "me@loopbot.dev"
# are not.
_MENTION = re.compile(r"(?<!\w)" + re.escape(BOT_MENTION) + r"(?!\w)", re.IGNORECASE)
_PREFIX = re.compile(re.escape(COMMAND_PREFIX) + r"(?!\w)", re.IGNORECASE)


def new_msg_id() -> str:
    """Locally created rows get ``ask-`` + 32 hex chars, as upstream."""
    return "ask-" + secrets.token_hex(16)


def strip_bot_mention(content: str) -> str:
    """The message without its trigger (SPEC §11, upstream's local bot): the first
    ``@LoopBot`` mention wherever it is, then a leading ``!loop`` command prefix, each any case.
    Where something was removed the text is trimmed, and the spaces around a mention inside
    the text become one (none before punctuation). Other white space is kept: upstream
    collapses every double space, which mangles pasted code. Threads created over the API
    carry a leading mention."""
    mention = _MENTION.search(content)
    if mention is not None:
        before, after = content[: mention.start()].rstrip(" \t"), content[mention.end() :]
        after = after.lstrip(" \t") if before else after.lstrip(" \t,:")  # "@LoopBot: go"
        spaced = before and after and not before[-1].isspace() and not after[0].isspace()
        joint = " " if spaced and after[0] not in ",.;:!?)" else ""
        content = (before + joint + after).strip()
    prefix = _PREFIX.match(content.lstrip())
    if prefix is not None:
        content = content.lstrip()[prefix.end() :].strip()
    return content


class MessageService:
    """Records messages; also the local platform's ``MessageSender`` (posting as the bot)."""

    def __init__(
        self,
        repo: MessageRepository,
        broadcaster: EventBroadcaster | None,
        *,
        clock: Clock,
    ) -> None:
        self._repo = repo
        self._broadcaster = broadcaster
        self._clock = clock

    async def record(
        self, channel_id: str, author_id: str, author_name: str, content: str, *, is_bot: bool
    ) -> Message:
        """Store a message and publish it. The channel must exist: ``NotFound`` (``channel not
        found``) otherwise. Upstream creates an unknown channel for a user's message, so a typo
        in a channel id started an agent in an empty directory; and a late reply must not
        resurrect a deleted channel."""
        try:
            message = await self._repo.insert(
                NewMessage(
                    channel_id=channel_id,
                    msg_id=new_msg_id(),
                    author_id=author_id,
                    author_name=author_name,
                    content=content,
                    is_bot=is_bot,
                    created_at=self._clock.now(),
                )
            )
        except ChannelNotFound as err:
            raise NotFound("channel not found") from err
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
