"""ChannelService (ensure a channel per directory, create a named one) and the store-backed
ChannelLister the API reads through. Both publish the global ``channel.created`` /
``channel.deleted`` events. ChannelSessions records the agent session a chat resumes (the
orchestrator's write); StoreChannelGrants reads and writes the slash commands' grants."""

from __future__ import annotations

import contextlib
import os
import secrets

from loop_server.clock import Clock
from loop_server.domain import Channel, ChannelUpsert, Message
from loop_server.protocols import ChannelCreator, GlobalEventBroadcaster
from loop_server.services.errors import Invalid, ServiceError
from loop_server.store import ChannelNotFound, ChannelRepository, ConstraintViolation, Store


def dir_basename(dir_path: str) -> str:
    """Go's ``filepath.Base``: trailing slashes ignored, "" → ".", all slashes → "/"."""
    if dir_path == "":
        return "."
    stripped = dir_path.rstrip("/")
    return os.path.basename(stripped) if stripped else "/"


class ChannelService:
    """Satisfies ``ChannelEnsurer``."""

    def __init__(
        self,
        store: Store,
        creator: ChannelCreator,
        *,
        guild_id: str,
        platform: str,
        clock: Clock,
        events: GlobalEventBroadcaster | None = None,
    ) -> None:
        self._store = store
        self._creator = creator
        self._guild_id = guild_id
        self._platform = platform
        self._clock = clock
        self._events = events

    async def ensure_channel(self, dir_path: str) -> str:
        # The directory is bind-mounted into agent containers and created when missing:
        # only an absolute path means the same place to the server and to the caller.
        if "\x00" in dir_path or not os.path.isabs(dir_path):
            raise Invalid("dir_path must be an absolute path")
        existing = await self._find_by_dir(dir_path)
        if existing is not None:
            return existing.channel_id
        name = f"{dir_basename(dir_path)}-{secrets.token_hex(2)}"
        try:
            channel_id = await self._creator.create_channel(self._guild_id, name)
        except Exception as err:
            raise ServiceError(f"creating channel: {err}") from err
        # Upstream ignores topic failures: the channel is usable without one.
        with contextlib.suppress(Exception):
            await self._creator.set_channel_topic(channel_id, dir_path)
        await self._invite_owner(channel_id)
        row = ChannelUpsert(
            channel_id=channel_id,
            guild_id=self._guild_id,
            name=name,
            dir_path=dir_path,
            platform=self._platform,
            active=True,
        )
        try:
            await self._store.channels.upsert(row, self._clock.now())
        except ConstraintViolation:
            # Another request ensured the same directory meanwhile; its channel wins.
            winner = await self._find_by_dir(dir_path)
            if winner is not None:
                return winner.channel_id
            raise
        except Exception as err:
            raise ServiceError(f"storing channel mapping: {err}") from err
        self._created(channel_id)
        return channel_id

    async def create_channel(self, name: str, author_id: str) -> str:
        try:
            channel_id = await self._creator.create_channel(self._guild_id, name)
        except Exception as err:
            raise ServiceError(f"creating channel: {err}") from err
        if author_id:
            try:
                await self._creator.invite_user(channel_id, author_id)
            except Exception as err:
                raise ServiceError(f"inviting user to channel: {err}") from err
        row = ChannelUpsert(
            channel_id=channel_id,
            guild_id=self._guild_id,
            name=name,
            platform=self._platform,
            active=True,
        )
        try:
            await self._store.channels.upsert(row, self._clock.now())
        except Exception as err:
            raise ServiceError(f"storing channel mapping: {err}") from err
        self._created(channel_id)
        return channel_id

    def _created(self, channel_id: str) -> None:
        if self._events is not None:
            self._events.broadcast_channel_created("", channel_id)

    async def _find_by_dir(self, dir_path: str) -> Channel | None:
        try:
            return await self._store.channels.get_by_dir_path(dir_path, self._platform)
        except Exception as err:
            raise ServiceError(f"looking up channel by dir path: {err}") from err

    async def _invite_owner(self, channel_id: str) -> None:
        try:
            owner = await self._creator.get_owner_user_id()
            if owner:
                await self._creator.invite_user(channel_id, owner)
        except Exception:
            pass  # best effort, as upstream


class StoreChannelLister:
    """Satisfies ``ChannelLister`` over the store's repositories."""

    def __init__(self, store: Store, *, events: GlobalEventBroadcaster | None = None) -> None:
        self._store = store
        self._events = events
        # The last listing's rows and the channels generation they were read under.
        self._rows: list[Channel] | None = None
        self._rows_generation = -1

    async def list_channels(self) -> list[Channel]:
        """Every channel and thread, by name. Read from SQLite only after a write to the
        channels' rows (``ChannelsGeneration``); otherwise the same list as last time — the
        same object, so callers may key what they derive from it on its identity, and must not
        change it. On PostgreSQL (no generation) every call reads."""
        generation = self._store.channels.generation
        if generation is None:  # other instances write too (PostgreSQL): always read
            return await self._store.channels.list()
        seen = generation.value  # before the read: a write that lands during it invalidates
        if self._rows is not None and self._rows_generation == seen:
            return self._rows
        rows = await self._store.channels.list()
        self._rows, self._rows_generation = rows, seen
        return rows

    async def get_channel(self, channel_id: str) -> Channel | None:
        return await self._store.channels.get(channel_id)

    async def get_messages_cursor(self, channel_id: str, cursor: int, limit: int) -> list[Message]:
        return await self._store.messages.page(channel_id, cursor, limit)

    async def delete_channel(self, channel_id: str) -> None:
        """Delete the channel with its threads, messages and tasks; one ``channel.deleted``."""
        if await self._store.channels.delete(channel_id) and self._events is not None:
            self._events.broadcast_channel_deleted(channel_id)


class ChannelSessions:
    """Records the agent session a channel's chat resumes (the orchestrator's one write)."""

    def __init__(self, store: Store, *, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def record(self, channel_id: str, session_id: str) -> None:
        await self._store.channels.set_session_id(channel_id, session_id, self._clock.now())


class StoreChannelGrants:
    """Satisfies ``commands.ChannelGrants`` on the store's channel repository."""

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
