"""The agent's command line and prompt (SPEC A.5 steps 4–5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loop_server.channel_paths import mcp_config_path
from loop_server.domain import Message

PROMPT_HISTORY = 50  # upstream renders the last 50 messages when there is no session


@dataclass(frozen=True, slots=True)
class SessionChoice:
    """Which Claude session a run continues: none, its own, or its parent's (forked)."""

    session_id: str = ""
    fork: bool = False


def choose_session(own: str, parent: str | None) -> SessionChoice:
    """A thread whose session is empty or still its parent's forks the parent's session;
    a thread whose session diverged, or a channel, resumes its own (SPEC A.5 step 4)."""
    if parent is not None and parent and (own == "" or own == parent):
        return SessionChoice(parent, fork=True)
    return SessionChoice(own, fork=False)


def claude_command(
    claude_bin: str,
    *,
    work_dir: str,
    channel_id: str,
    session: SessionChoice,
    model: str = "",
    system_prompt: str = "",
) -> list[str]:
    """Upstream's flags, without the prompt: the runner writes it to Claude's stdin, where no
    length limit applies (one argument may hold at most 128 KiB on Linux, and a run's prompt
    carries up to 50 messages) and no text can be taken for an option."""
    argv = [claude_bin, "--mcp-config", mcp_config_path(work_dir, channel_id)]
    if model:
        argv += ["--model", model]
    argv += [
        "--print",
        "--verbose",
        "--output-format",
        "stream-json",
        "--dangerously-skip-permissions",
    ]
    if session.session_id:
        argv += ["--resume", session.session_id]
        if session.fork:
            argv.append("--fork-session")
    if system_prompt:
        argv += ["--append-system-prompt", system_prompt]
    return argv


def build_prompt(latest: Message, history: Sequence[Message], *, has_session: bool) -> str:
    """With a session, Claude already has the history: send only the new message. Without
    one, render the recent conversation (oldest first) so the agent has the context."""
    if has_session:
        return f"{latest.author_name}: {latest.content}"
    lines = [f"{'assistant' if m.is_bot else 'user'}: {m.content}\n" for m in history]
    return "".join(lines)
