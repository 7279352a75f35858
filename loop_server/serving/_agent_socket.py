"""The ASGI app behind the agent socket (``<data-dir>/run/api.sock``, docs/mcp.md).

The socket is mounted into every channel container, so what arrives on it is treated as an
agent's: every request is marked as having come through it (the gateway then needs a token on
each one, the owner's or an agent's), and the WebSocket endpoints are not served there (an
agent has no business watching every channel's events or opening terminals).
"""

from __future__ import annotations

from typing import Any

from loop_server.access import VIA_AGENT_SOCKET
from loop_server.plain_text import CONTENT_TYPE_HEADER
from loop_server.websocket_close import POLICY_VIOLATION

REFUSAL = b"forbidden: the agent socket serves the REST API only\n"


class AgentSocketApp:
    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await _refuse_websocket(scope, send)
            return
        if scope["type"] == "http":
            scope[VIA_AGENT_SOCKET] = True
        await self._app(scope, receive, send)


async def _refuse_websocket(scope: Any, send: Any) -> None:
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = [CONTENT_TYPE_HEADER]
        await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": REFUSAL})
    else:
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})
