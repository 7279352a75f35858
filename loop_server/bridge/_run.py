"""Running the bridge: stdio MCP on Trio until the client closes stdin."""

from __future__ import annotations

from functools import partial

import trio

from loop_server.bridge._api import Endpoint, LoopApi
from loop_server.bridge._tools import build_server


class BridgeError(Exception):
    """The bridge cannot start; the text says why (printed by the CLI, exit 1)."""


def read_token_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            token = file.read().strip()
    except OSError as err:
        raise BridgeError(f"reading token file {path}: {err.strerror or err}") from err
    if not token:
        raise BridgeError(f"token file {path} is empty")
    return token


async def serve_stdio(channel_id: str, endpoint: Endpoint, author_id: str = "") -> None:
    # The SDK is written on anyio, whose Trio backend runs it unchanged: this process never
    # starts an asyncio loop (docs/decisions.md).
    async with endpoint.client() as client:
        server = build_server(channel_id, LoopApi(client), author_id=author_id)
        await server.run_stdio_async()


def run_bridge(channel_id: str, endpoint: Endpoint, author_id: str = "") -> None:
    trio.run(partial(serve_stdio, channel_id, endpoint, author_id))
