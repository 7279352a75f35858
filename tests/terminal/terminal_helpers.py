"""Helpers for the terminal tests: a terminal client, a channel store stand-in, sockets.

The rules every test here follows are in the docstrings of the test modules.
"""

from __future__ import annotations

import base64
import collections
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import trio
from hypercorn.config import Config
from trio_websocket import WebSocketConnection

from loop_server.domain import Channel
from tests.events.events_helpers import connect_ws

DEADLINE = 20.0  # seconds: covers container start-up on a busy machine


def loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def hypercorn_config(graceful_timeout: float = 5.0) -> Config:
    config = Config()
    config.graceful_timeout = graceful_timeout
    config.accesslog = None
    return config


def channel(channel_id: str, **fields: Any) -> Channel:
    """A stored channel as the endpoint reads it."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": 1,
        "channel_id": channel_id,
        "guild_id": "",
        "name": channel_id,
        "active": True,
        "session_id": "",
        "dir_path": "",
        "parent_id": "",
        "platform": "local",
        "permissions": "",
        "created_at": now,
        "updated_at": now,
    }
    values.update(fields)
    return Channel(**values)


class FakeChannels:
    """The store's ``get_channel``, from a dict; ``failing`` makes every lookup raise."""

    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}
        self.failing = False

    def add(self, channel_id: str, **fields: Any) -> None:
        self.channels[channel_id] = channel(channel_id, **fields)

    async def get_channel(self, channel_id: str) -> Channel | None:
        await trio.lowlevel.checkpoint()
        if self.failing:
            raise RuntimeError("database is locked")
        return self.channels.get(channel_id)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Terminal:
    """A terminal client: status messages and output in the order they arrived."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        #: Every output byte received so far (history frames included).
        self.output = bytearray()
        #: Binary frames, as received (to check where the history frame falls).
        self.frames: list[bytes] = []
        self._statuses: collections.deque[dict[str, Any]] = collections.deque()

    async def send(self, **fields: Any) -> None:
        await self.ws.send_message(json.dumps(fields))

    async def send_raw(self, payload: str | bytes) -> None:
        await self.ws.send_message(payload)

    async def type(self, text: str) -> None:
        await self.send(type="input", data=b64(text.encode()))

    async def _receive(self) -> None:
        message = await self.ws.get_message()
        if isinstance(message, bytes):
            self.output += message
            self.frames.append(message)
        else:
            assert message.endswith("\n"), "status messages end with a newline (WriteJSON)"
            self._statuses.append(json.loads(message))

    async def status(self) -> dict[str, Any]:
        """The next status message (output before it is collected)."""
        while not self._statuses:
            await self._receive()
        return self._statuses.popleft()

    async def expect(self, kind: str) -> dict[str, Any]:
        status = await self.status()
        assert status["type"] == kind, status
        return status

    async def error(self, code: str) -> str:
        """The next status must be an error with ``code``; returns its message."""
        status = await self.expect("error")
        assert status["error_code"] == code, status
        assert set(status) == {"type", "message", "error_code"}
        return str(status["message"])

    async def read_until(self, needle: bytes) -> bytes:
        """Collect output until ``needle`` has arrived; returns everything so far. Status
        messages that arrive meanwhile are kept for ``status()``."""
        while needle not in self.output:
            await self._receive()
        return bytes(self.output)

    async def run(self, command: str, marker: bytes) -> bytes:
        """Type ``command`` and wait for ``marker`` (write markers as shell arithmetic, e.g.
        ``m-$((40+2))`` → ``m-42``, so the terminal's echo of the command never matches)."""
        await self.type(command + "\n")
        return await self.read_until(marker)

    async def create(self, *, replacing: bool = False, **fields: Any) -> str:
        """Create a session; ``replacing``: the current one's stream ends first (``closed``)."""
        await self.send(type="create", **fields)
        if replacing:
            assert await self.status() == {"type": "closed"}
        return str((await self.expect("created"))["session_id"])


@asynccontextmanager
async def open_terminal(port: int, resource: str = "/api/ws/terminal") -> AsyncIterator[Terminal]:
    # Output frames are at most 64 KiB, but a history frame may be 1 MiB.
    async with connect_ws(port, resource, max_message_size=4 << 20) as ws:
        yield Terminal(ws)
