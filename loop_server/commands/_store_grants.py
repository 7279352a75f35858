"""``ChannelGrants`` on the SQLite store's channel repository."""

from __future__ import annotations

from loop_server.clock import Clock
from loop_server.store import ChannelNotFound, ChannelRepository
from loop_server.store.models import Channel, ChannelUpsert


class StoreChannelGrants:
    def __init__(self, channels: ChannelRepository, *, clock: Clock) -> None:
        self._channels = channels
        self._clock = clock

    async def get_channel(self, channel_id: str) -> Channel | None:
        return await self._channels.get(channel_id)

    async def set_permissions(self, channel_id: str, permissions: str) -> None:
        # The repository has no single-column update for grants, so this re-writes the row
        # with the values just read. session_id and platform are passed empty, which keeps the
        # stored ones: an agent run may record a new session between the read and this write.
        if not permissions:
            raise ValueError("grants must be stored as JSON, never ''")
        channel = await self._channels.get(channel_id)
        if channel is None:
            raise ChannelNotFound(channel_id)
        await self._channels.upsert(
            ChannelUpsert(
                channel_id=channel.channel_id,
                guild_id=channel.guild_id,
                name=channel.name,
                dir_path=channel.dir_path,
                parent_id=channel.parent_id,
                permissions=permissions,
                active=channel.active,
            ),
            self._clock.now(),
        )
