"""ThreadService: create and delete threads of a channel (``channel.created`` /
``channel.deleted`` events, the envelope's channel being the parent for a new thread)."""

from __future__ import annotations

import logging
from pathlib import Path

import trio

from loop_server.channel_paths import mcp_config_path
from loop_server.clock import Clock
from loop_server.domain import Channel, ChannelUpsert
from loop_server.platform.local import new_thread_id
from loop_server.protocols import GlobalEventBroadcaster, ThreadCreator
from loop_server.services.errors import Invalid, NotFound, ServiceError
from loop_server.store import Store

log = logging.getLogger(__name__)


class ThreadService:
    """Satisfies ``ThreadEnsurer``."""

    def __init__(
        self,
        store: Store,
        creator: ThreadCreator | None,
        *,
        clock: Clock,
        loop_dir: str = "",
        events: GlobalEventBroadcaster | None = None,
    ) -> None:
        self._store = store
        self._creator = creator
        self._clock = clock
        self._loop_dir = loop_dir  # where a thread without a dir_path works (its parent's)
        self._events = events

    async def create_thread(self, channel_id: str, name: str, author_id: str, message: str) -> str:
        parent = await self._get(channel_id, "looking up parent channel")
        if parent is None:
            raise NotFound(f"parent channel {channel_id} not found")
        if parent.is_thread:
            # A thread of a thread belongs to the top-level channel.
            resolved = await self._get(parent.parent_id, "looking up resolved parent channel")
            if resolved is None:
                raise NotFound(f"resolved parent channel {parent.parent_id} not found")
            parent = resolved
        thread_id = ""
        if self._creator is not None:
            try:
                thread_id = await self._creator.create_thread(
                    parent.channel_id, name, author_id, message
                )
            except Exception as err:
                raise ServiceError(f"creating thread: {err}") from err
        thread_id = thread_id or new_thread_id()
        row = ChannelUpsert(
            channel_id=thread_id,
            guild_id=parent.guild_id,
            name=name,
            dir_path=parent.dir_path,
            parent_id=parent.channel_id,
            platform=parent.platform,
            session_id=parent.session_id,
            permissions=parent.permissions,
            active=True,
        )
        try:
            await self._store.channels.upsert(row, self._clock.now())
        except Exception as err:
            raise ServiceError(f"storing thread mapping: {err}") from err
        if self._events is not None:
            self._events.broadcast_channel_created(parent.channel_id, thread_id)
        return thread_id

    async def rename_thread(self, thread_id: str, name: str) -> None:
        thread = await self._get(thread_id, "looking up thread")
        if thread is None:
            raise NotFound(f"thread {thread_id} not found")
        if not thread.is_thread:
            raise Invalid(f"channel {thread_id} is not a thread")
        row = ChannelUpsert(
            channel_id=thread.channel_id,
            guild_id=thread.guild_id,
            name=name,
            dir_path=thread.dir_path,
            parent_id=thread.parent_id,
            active=thread.active,
        )
        try:
            await self._store.channels.upsert(row, self._clock.now())
        except Exception as err:
            raise ServiceError(f"renaming thread: {err}") from err

    async def delete_thread(self, thread_id: str) -> None:
        thread = await self._get(thread_id, "looking up thread")
        if thread is None:
            raise NotFound(f"thread {thread_id} not found")
        if not thread.is_thread:
            raise Invalid(f"channel {thread_id} is not a thread")
        work_dir = thread.work_dir(self._loop_dir)
        if work_dir:
            await self._remove_mcp_config(Path(mcp_config_path(work_dir, thread_id)))
        if self._creator is not None:
            try:
                await self._creator.delete_thread(thread_id)
            except Exception as err:
                raise ServiceError(f"deleting thread: {err}") from err
        try:
            deleted = await self._store.channels.delete(thread_id)
        except Exception as err:
            raise ServiceError(f"deleting thread from db: {err}") from err
        if deleted and self._events is not None:
            self._events.broadcast_channel_deleted(thread_id)

    async def _get(self, channel_id: str, context: str) -> Channel | None:
        try:
            return await self._store.channels.get(channel_id)
        except Exception as err:
            raise ServiceError(f"{context}: {err}") from err

    @staticmethod
    async def _remove_mcp_config(path: Path) -> None:
        def remove() -> None:
            path.unlink(missing_ok=True)

        try:
            await trio.to_thread.run_sync(remove)
        except OSError as err:
            log.warning("removing thread MCP config %s: %s", path, err)
