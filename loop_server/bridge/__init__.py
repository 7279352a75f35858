"""``loop-server mcp``: the MCP server an agent uses to act on this server (docs/mcp.md).

A stdio MCP server on the official SDK whose tools call the HTTP API, over the unix socket
mounted into channel containers or over TCP, with the channel's scoped token."""

from loop_server.bridge._api import Endpoint, Failure, LoopApi
from loop_server.bridge._run import BridgeError, read_token_file, run_bridge
from loop_server.bridge._tools import DESCRIPTIONS, build_server

__all__ = [
    "DESCRIPTIONS",
    "BridgeError",
    "Endpoint",
    "Failure",
    "LoopApi",
    "build_server",
    "read_token_file",
    "run_bridge",
]
