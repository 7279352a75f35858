"""The interactive Claude command typed into a new channel terminal (SPEC §5.5)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from loop_server.channel_paths import fallback_work_dir, mcp_config_path
from loop_server.hujson import parse_hujson

log = logging.getLogger("loop_server.terminal")


class InteractiveCommands:
    """Satisfies ``protocols.InteractiveCmdBuilder``.

    The global settings (``claude_bin``, ``model``) are the server's; a project config at
    ``<work dir>/.loop/config.json`` overrides them with its ``claude_bin_path`` and
    ``claude_model`` when it can be read. Blocking (reads that file): call it from a thread.
    """

    def __init__(self, *, loop_dir: str, claude_bin: str = "claude", model: str = "") -> None:
        self._loop_dir = loop_dir
        self._claude_bin = claude_bin
        self._model = model

    def build_interactive_cmd(
        self, channel_id: str, dir_path: str, session_id: str, fork_session: bool
    ) -> str:
        work_dir = dir_path or fallback_work_dir(self._loop_dir, channel_id)
        project = _project_config(work_dir)
        claude_bin = _text(project, "claude_bin_path") or self._claude_bin
        model = _text(project, "claude_model") or self._model
        tokens = [claude_bin, "--mcp-config", mcp_config_path(work_dir, channel_id)]
        if model:
            tokens += ["--model", model]
        tokens.append("--dangerously-skip-permissions")
        if session_id:
            tokens += ["--resume", session_id]
            if fork_session:
                tokens.append("--fork-session")
        # Upstream joins with single spaces and no shell quoting; the ids are ours (hex) and
        # the paths are the operator's.
        return " ".join(tokens)


def _project_config(work_dir: str) -> dict[str, Any]:
    path = Path(work_dir) / ".loop" / "config.json"
    try:
        data = parse_hujson(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, UnicodeDecodeError) as err:
        log.info("terminal: project config %s not loadable: %s", path, err)
        return {}
    return data if isinstance(data, dict) else {}


def _text(config: dict[str, Any], key: str) -> str:
    value = config.get(key)
    return value if isinstance(value, str) else ""
