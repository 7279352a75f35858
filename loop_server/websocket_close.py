"""Every WebSocket close code the server sends, in one table (RFC 6455 §7.4, SPEC A.2–A.3).

A leaf module: the events hub (which decides 4008 and 1001), the WebSocket core (which decides
the protocol ones), the terminal endpoint, and the ASGI refusals of a WebSocket the server does
not serve there (1008: the gateway's, the agent socket's) all name their codes from here.
"""

from __future__ import annotations

#: A close handshake either side asked for with nothing wrong.
NORMAL = 1000
#: Graceful shutdown (SPEC A.3): reason ``SHUTDOWN_REASON``.
GOING_AWAY = 1001
#: A frame RFC 6455 does not allow: reserved bits or opcodes, unmasked, bad control frame.
PROTOCOL_ERROR = 1002
#: A close frame carried no code; never sent on the wire (an empty close payload instead).
NO_STATUS = 1005
#: A text message (or close reason) that is not valid UTF-8.
INVALID_PAYLOAD = 1007
#: A WebSocket refused by policy where an HTTP refusal cannot be sent (ASGI without the
#: ``websocket.http.response`` extension).
POLICY_VIOLATION = 1008
#: A message over the configured size limit (SPEC A.2: 1 MiB by default).
MESSAGE_TOO_BIG = 1009
#: The server hit a bug of its own on this connection.
INTERNAL_ERROR = 1011
#: The connection's event queue overflowed (SPEC A.3): reason ``SLOW_CONSUMER_REASON``.
SLOW_CONSUMER = 4008

SHUTDOWN_REASON = "server shutting down"
#: 1001 too: the shared event stream began a new epoch (Redis lost its data), so every
#: client reconnects and is told its replay is truncated.
EPOCH_CHANGED_REASON = "events epoch changed"
#: 1001 too: a client resuming on an instance that had not yet reached its ``since``, when that
#: instance then found a gap in the shared stream covering it; reconnecting tells it to reload.
REPLAY_GAP_REASON = "events missed, reconnect"
SLOW_CONSUMER_REASON = "slow consumer"
MESSAGE_TOO_BIG_REASON = "message too big"
