"""Claude's ``--output-format stream-json`` output, parsed without I/O (SPEC A.5 step 6).

Lines are fed one at a time; each yields at most one event. Anything that is not a JSON object
is skipped (the CLI and wrappers may print other lines), as upstream does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class AssistantTurn:
    """One intermediate assistant turn: its text blocks joined by newlines."""

    text: str


@dataclass(frozen=True, slots=True)
class RunResult:
    text: str
    session_id: str
    is_error: bool


StreamEvent = AssistantTurn | RunResult


def parse_line(line: bytes | str) -> StreamEvent | None:
    try:
        value: Any = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind == "assistant":
        return _assistant(value)
    if kind == "result":
        result = value.get("result")
        session_id = value.get("session_id")
        return RunResult(
            text=result if isinstance(result, str) else "",
            session_id=session_id if isinstance(session_id, str) else "",
            is_error=value.get("is_error") is True,
        )
    return None


def _assistant(value: dict[str, Any]) -> AssistantTurn | None:
    message = value.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return None
    texts = [
        block["text"]
        for block in content
        if isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
        and block["text"]
    ]
    text = "\n".join(texts)
    return AssistantTurn(text) if text else None


class LineSplitter:
    """Bytes in, complete lines out; a partial last line waits for more (bounded)."""

    def __init__(self, max_line_bytes: int = 16 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._max = max_line_bytes

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        lines = self._buffer.split(b"\n")
        self._buffer = bytearray(lines.pop())
        if len(self._buffer) > self._max:
            # A runaway line without newline: drop it rather than grow without bound.
            self._buffer.clear()
        return [bytes(line) for line in lines if line.strip()]

    def flush(self) -> list[bytes]:
        rest = bytes(self._buffer).strip()
        self._buffer.clear()
        return [rest] if rest else []
