"""What every container of a channel mounts from the host: the channel's work dir (agent runs
and the shell containers terminals open, SPEC A.5 step 5, §5.6) and Claude's state dir."""

from __future__ import annotations

import json
import os

from loop_server.channel_paths import mcp_config_path


def prepare_work_dir(work_dir: str, channel_id: str) -> None:
    """The work dir must exist before Docker bind-mounts it (Docker would create it as root),
    and Claude's ``--mcp-config`` must name a readable file. Blocking: call it in a thread."""
    os.makedirs(os.path.join(work_dir, ".loop"), exist_ok=True)
    path = mcp_config_path(work_dir, channel_id)
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as config:
            json.dump({"mcpServers": {}}, config)


def prepare_claude_dir(path: str) -> None:
    """Claude's state dir (sessions, auto-memory, settings) outlives every container, so that
    ``--resume`` finds the session an earlier run saved. Private: it holds transcripts.
    Blocking: call it in a thread."""
    os.makedirs(path, mode=0o700, exist_ok=True)
