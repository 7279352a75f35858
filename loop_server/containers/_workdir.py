"""What every container of a channel mounts from the host: the channel's work dir (agent runs
and the shell containers terminals open, SPEC A.5 step 5, §5.6) and Claude's state dir."""

from __future__ import annotations

import json
import os
import secrets

from loop_server.channel_paths import mcp_config_path

# Where channel containers find the agent socket's directory and their token (docs/mcp.md).
CONTAINER_SOCKET_DIR = "/run/loop/socket"
CONTAINER_TOKEN_FILE = "/run/loop/api-token"
BRIDGE_SERVER = "loop"  # the MCP server's name: its tools are mcp__loop__<tool>


def bridge_entry(command: str, channel_id: str, socket_name: str) -> dict[str, object]:
    """The MCP config entry that starts the bridge inside a channel container."""
    return {
        "command": command,
        "args": [
            "mcp",
            "--channel-id",
            channel_id,
            "--socket",
            f"{CONTAINER_SOCKET_DIR}/{socket_name}",
            "--token-file",
            CONTAINER_TOKEN_FILE,
        ],
    }


def prepare_work_dir(
    work_dir: str, channel_id: str, bridge: dict[str, object] | None = None
) -> None:
    """The work dir must exist before Docker bind-mounts it (Docker would create it as root),
    and Claude's ``--mcp-config`` must name a readable file: one naming the bridge (when
    ``bridge`` is given), written every time so it always matches this server, and keeping any
    other server someone added to it. Blocking: call it in a thread."""
    os.makedirs(os.path.join(work_dir, ".loop"), exist_ok=True)
    path = mcp_config_path(work_dir, channel_id)
    servers: dict[str, object] = {}
    try:
        with open(path, encoding="utf-8") as config:
            existing = json.load(config)
        if isinstance(existing, dict) and isinstance(existing.get("mcpServers"), dict):
            servers = dict(existing["mcpServers"])
    except (OSError, ValueError):
        pass  # missing or unreadable: written anew
    if bridge is not None:
        servers[BRIDGE_SERVER] = bridge
    else:
        servers.pop(BRIDGE_SERVER, None)
    # Written whole and renamed: an agent run and a shell may prepare the same channel at once.
    temporary = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    with open(temporary, "w", encoding="utf-8") as config:
        json.dump({"mcpServers": servers}, config)
    os.replace(temporary, path)


def prepare_claude_dir(path: str) -> None:
    """Claude's state dir (sessions, auto-memory, settings) outlives every container, so that
    ``--resume`` finds the session an earlier run saved. Private: it holds transcripts.
    Blocking: call it in a thread."""
    os.makedirs(path, mode=0o700, exist_ok=True)
