"""A channel's family (the channel and its threads), and what a caller may see of the list."""

from __future__ import annotations

from collections.abc import Callable

from loop_server.access import Caller
from loop_server.domain import Channel
from loop_server.protocols import ChannelLister


async def family_root(channels: ChannelLister | None, channel_id: str) -> str:
    """The channel whose family ``channel_id`` belongs to: its parent for a thread."""
    channel = None if channels is None else await channels.get_channel(channel_id)
    return channel.parent_id if channel is not None and channel.parent_id else channel_id


def sees_all(caller: object) -> bool:
    """Whether a listing shows ``caller`` every channel (the owner; not an agent)."""
    return not isinstance(caller, Caller) or not caller.is_agent


async def visible_to(caller: object, channels: ChannelLister) -> Callable[[Channel], bool]:
    """Which channels a listing shows ``caller`` (the request's ``CALLER``): all to the owner,
    its family to an agent."""
    if not isinstance(caller, Caller) or sees_all(caller):
        return lambda _: True
    root = await family_root(channels, caller.channel_id)
    return lambda channel: root in (channel.channel_id, channel.parent_id)
