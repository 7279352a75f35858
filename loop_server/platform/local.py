"""The ``local`` platform (SPEC §9.3): the desktop app talking only through this API.

There is no chat service behind it, so creating a channel just mints an id, invites and topics
are no-ops, and threads are kept only in our own store.
"""

from __future__ import annotations

import secrets

PLATFORM = "local"
BOT_USER_ID = "loop-bot"
BOT_NAME = "LoopBot"
DEFAULT_AUTHOR = "local-user"


def new_channel_id() -> str:
    return secrets.token_hex(12)  # 24 hex chars, as upstream's local platform


def new_thread_id() -> str:
    return secrets.token_hex(6)  # 12 hex chars


class LocalPlatform:
    """Satisfies ``ChannelCreator`` and ``ThreadCreator``."""

    async def create_channel(self, guild_id: str, name: str) -> str:
        return new_channel_id()

    async def invite_user(self, channel_id: str, user_id: str) -> None:
        return None

    async def get_owner_user_id(self) -> str:
        return ""

    async def set_channel_topic(self, channel_id: str, topic: str) -> None:
        return None

    async def create_thread(
        self, channel_id: str, name: str, mention_user_id: str, message: str
    ) -> str:
        return ""  # the thread service generates the id and stores the row

    async def delete_thread(self, thread_id: str) -> None:
        return None
