"""Helpers for the MCP bridge's tests.

The rules of tests/conftest.py hold, and: the bridge is the real ``loop-server mcp`` process,
started and spoken to by the official SDK's stdio client (a real MCP session), against a real
server reached over its real unix socket (or TCP), with a real scoped token issued by the
server's registry (what a channel container gets mounted).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

import trio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import CallToolResult, TextContent

from loop_server.access import AgentToken, AgentTokens
from loop_server.runtime import ServerHandle

LOOP_SERVER = str(Path(sys.executable).parent / "loop-server")
SESSION_DEADLINE = 60


def agent_token(server: ServerHandle, channel_id: str) -> AgentToken:
    """What a container of ``channel_id`` gets mounted: a live token in a file."""
    tokens: AgentTokens = server.services.agent_tokens
    return tokens.issue(channel_id)


def token_secret(server: ServerHandle, channel_id: str) -> str:
    """A new token of ``channel_id``, read from its file as the bridge reads it."""
    return Path(agent_token(server, channel_id).path).read_text("ascii")


def socket_path(server: ServerHandle) -> str:
    path = server.config.socket_path
    assert path is not None
    return str(path)


@asynccontextmanager
async def bridge(
    channel_id: str,
    *args: str,
    log_dir: Path,
    env: dict[str, str] | None = None,
    command: str = LOOP_SERVER,
) -> AsyncIterator[ClientSession]:
    """An initialised MCP session with ``loop-server mcp --channel-id ID ARGS...``."""
    params = StdioServerParameters(
        command=command, args=["mcp", "--channel-id", channel_id, *args], env=env
    )
    # The bridge's stderr (its log) is kept beside the test's other files.
    errlog = open_log(log_dir / "bridge-stderr.log")
    with errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            with trio.fail_after(SESSION_DEADLINE):
                await session.initialize()
            yield session


def open_log(path: Path) -> TextIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8")


@asynccontextmanager
async def agent_bridge(
    server: ServerHandle, channel_id: str, log_dir: Path
) -> AsyncIterator[ClientSession]:
    """The bridge as a channel container runs it: over the socket, with its own token."""
    token = agent_token(server, channel_id)
    async with bridge(
        channel_id,
        "--socket",
        socket_path(server),
        "--token-file",
        token.path,
        log_dir=log_dir,
    ) as session:
        yield session


async def call(session: ClientSession, tool: str, **arguments: object) -> CallToolResult:
    with trio.fail_after(SESSION_DEADLINE):
        return await session.call_tool(tool, dict(arguments))


def text_of(result: CallToolResult) -> str:
    assert len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


async def ok(session: ClientSession, tool: str, **arguments: object) -> str:
    result = await call(session, tool, **arguments)
    assert not result.is_error, text_of(result)
    return text_of(result)


async def refused(session: ClientSession, tool: str, **arguments: object) -> str:
    result = await call(session, tool, **arguments)
    assert result.is_error, text_of(result)
    return text_of(result)
