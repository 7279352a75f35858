"""Channel ids in host paths: ``<loop dir>/<id>/work`` and ``<work>/.loop/mcp-<id>.json``.

Channel ids are chosen by callers (a message to an unknown id creates that channel, SPEC A.5
step 1), and these paths are created on the host and bind-mounted into containers that run
with ``--dangerously-skip-permissions``. An id such as ``../../home/me`` must not lead there.
Ids that are plain file names (every id this server or a chat platform makes) are used as they
are, as upstream does; any other id is replaced by a digest of it, which is stable and cannot
name another channel's directory.
"""

from __future__ import annotations

import hashlib
import re

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def channel_dir_name(channel_id: str) -> str:
    """``channel_id`` if it is safe as one path component, else ``id-<sha256 prefix>``."""
    if _PLAIN.fullmatch(channel_id):
        return channel_id
    digest = hashlib.sha256(channel_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"id-{digest[:32]}"


def fallback_work_dir(loop_dir: str, channel_id: str) -> str:
    """Where a channel without a ``dir_path`` works (SPEC §3.1 step 7, A.5 step 5)."""
    return f"{loop_dir}/{channel_dir_name(channel_id)}/work"


def mcp_config_path(work_dir: str, channel_id: str) -> str:
    """The channel's MCP config file, named by ``claude --mcp-config`` (SPEC A.5 step 5)."""
    return f"{work_dir}/.loop/mcp-{channel_dir_name(channel_id)}.json"
