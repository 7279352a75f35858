"""Live events for every UI: the hub that fans them out (SPEC §4, A.3, A.4).

The WebSocket endpoint that carries them is in ``loop_server.serving``.
"""

from loop_server.events._envelope import (
    AGENT_ACTIVITY,
    AGENT_STATUS,
    HELLO,
    MESSAGE_CREATED,
    MESSAGE_STREAMING,
    REPLAY_TRUNCATED,
    TOOL_USE,
    encode_hello,
    encode_replay_truncated,
)
from loop_server.events._event import Event
from loop_server.events._global import (
    CHANNEL_CREATED,
    CHANNEL_DELETED,
    CONTAINER_STATUS_CHANGED,
    TASK_CREATED,
    TASK_DELETED,
    TASK_RUN_COMPLETED,
    TASK_UPDATED,
)
from loop_server.events._hub import (
    CLOSE_GOING_AWAY,
    CLOSE_SLOW_CONSUMER,
    DEFAULT_HISTORY_SIZE,
    DEFAULT_QUEUE_SIZE,
    SHUTDOWN_REASON,
    SLOW_CONSUMER_REASON,
    EventsHub,
    HubStatistics,
)
from loop_server.events._pacer import WritePacer
from loop_server.events._redis_relay import (
    RedisRelay,
    RelayStatistics,
    RelayUnavailable,
    open_redis_relay,
)
from loop_server.events._subscription import Subscription

__all__ = [
    "AGENT_ACTIVITY",
    "AGENT_STATUS",
    "CHANNEL_CREATED",
    "CHANNEL_DELETED",
    "CLOSE_GOING_AWAY",
    "CLOSE_SLOW_CONSUMER",
    "CONTAINER_STATUS_CHANGED",
    "DEFAULT_HISTORY_SIZE",
    "DEFAULT_QUEUE_SIZE",
    "HELLO",
    "MESSAGE_CREATED",
    "MESSAGE_STREAMING",
    "REPLAY_TRUNCATED",
    "SHUTDOWN_REASON",
    "SLOW_CONSUMER_REASON",
    "TASK_CREATED",
    "TASK_DELETED",
    "TASK_RUN_COMPLETED",
    "TASK_UPDATED",
    "TOOL_USE",
    "Event",
    "EventsHub",
    "HubStatistics",
    "RedisRelay",
    "RelayStatistics",
    "RelayUnavailable",
    "Subscription",
    "WritePacer",
    "encode_hello",
    "encode_replay_truncated",
    "open_redis_relay",
]
