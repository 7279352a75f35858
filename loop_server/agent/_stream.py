"""Claude's ``--output-format stream-json`` output, parsed without I/O (SPEC A.5 step 6).

Lines are fed one at a time; each yields zero or more events. Anything that is not a JSON
object is skipped (the CLI and wrappers may print other lines), as upstream does.

The shapes are those of the real CLI (Claude Code 2.1, captured against the fake Messages API
of the tests): one JSON object a line, ``type`` one of

* ``system`` — ``subtype`` ``init`` (``session_id``, ``model``, ``tools``…) first, and
  ``api_retry`` (``attempt``, ``max_retries``, ``retry_delay_ms``, ``error_status``, ``error``)
  each time an API call failed and will be retried;
* ``assistant`` — ``message.content`` holds ONE block per line (``text`` or ``tool_use`` with
  ``id``, ``name``, ``input``); lines of one API message share ``message.id``;
* ``user`` — the tool results sent back (``tool_result`` blocks with ``tool_use_id``);
* ``result`` — last: ``result`` (final text), ``session_id``, ``is_error``, ``num_turns``,
  ``duration_ms``, ``stop_reason``, ``api_error_status``, ``terminal_reason``; a run that
  failed before any answer (``subtype`` ``error_during_execution``, e.g. ``--resume`` of an
  unknown session) has no ``result`` but ``errors``, a list of texts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

TOOL_INPUT_CHARS = 200  # a tool.use event carries a short summary of the input, not all of it


@dataclass(frozen=True, slots=True)
class SessionStarted:
    session_id: str
    model: str


@dataclass(frozen=True, slots=True)
class AssistantTurn:
    """One intermediate assistant turn: its text blocks joined by newlines."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolUse:
    tool_use_id: str
    name: str
    summary: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_use_id: str
    is_error: bool


@dataclass(frozen=True, slots=True)
class ApiRetry:
    """An API call failed and the CLI will retry it after ``delay_ms``."""

    attempt: int
    max_retries: int
    status: int  # HTTP status, 0 when there was none (connection failure)
    error: str  # the CLI's name for it: authentication_failed, overloaded, rate_limit, …
    delay_ms: int


@dataclass(frozen=True, slots=True)
class RunResult:
    text: str
    session_id: str
    is_error: bool
    num_turns: int = 0
    duration_ms: int = 0
    stop_reason: str = ""
    api_error_status: int = 0
    errors: tuple[str, ...] = ()  # why a run failed before any answer (e.g. no session)

    @property
    def error_text(self) -> str:
        return self.text or "; ".join(self.errors)


StreamEvent = SessionStarted | AssistantTurn | ToolUse | ToolResult | ApiRetry | RunResult


def parse_line(line: bytes | str) -> list[StreamEvent]:
    try:
        value: Any = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(value, dict):
        return []
    kind = value.get("type")
    if kind == "assistant":
        return _assistant(value)
    if kind == "user":
        return _tool_results(value)
    if kind == "system":
        event = _system(value)
        return [event] if event is not None else []
    if kind == "result":
        return [
            RunResult(
                text=_str(value.get("result")),
                session_id=_str(value.get("session_id")),
                is_error=value.get("is_error") is True,
                num_turns=_int(value.get("num_turns")),
                duration_ms=_int(value.get("duration_ms")),
                stop_reason=_str(value.get("stop_reason")),
                api_error_status=_int(value.get("api_error_status")),
                errors=_strings(value.get("errors")),
            )
        ]
    return []


def _system(value: dict[str, Any]) -> StreamEvent | None:
    subtype = value.get("subtype")
    if subtype == "init":
        return SessionStarted(_str(value.get("session_id")), _str(value.get("model")))
    if subtype == "api_retry":
        return ApiRetry(
            attempt=_int(value.get("attempt")),
            max_retries=_int(value.get("max_retries")),
            status=_int(value.get("error_status")),
            error=_str(value.get("error")),
            delay_ms=_int(value.get("retry_delay_ms")),
        )
    return None


def _content(value: dict[str, Any]) -> list[dict[str, Any]]:
    message = value.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [block for block in content if isinstance(block, dict)]


def _assistant(value: dict[str, Any]) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    texts: list[str] = []
    for block in _content(value):
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            texts.append(block["text"])
        elif kind == "tool_use":
            events.append(
                ToolUse(
                    _str(block.get("id")), _str(block.get("name")), summarize(block.get("input"))
                )
            )
    if texts:
        events.insert(0, AssistantTurn("\n".join(texts)))
    return events


def _tool_results(value: dict[str, Any]) -> list[StreamEvent]:
    return [
        ToolResult(_str(block.get("tool_use_id")), block.get("is_error") is True)
        for block in _content(value)
        if block.get("type") == "tool_result"
    ]


def summarize(tool_input: object) -> str:
    """A tool's input as one short line: the command, path or pattern when it has one (what
    a person watching wants to see), else its compact JSON; cut at TOOL_INPUT_CHARS."""
    text = ""
    if isinstance(tool_input, dict):
        for key in ("command", "file_path", "path", "pattern", "url", "query", "description"):
            if isinstance(tool_input.get(key), str) and tool_input[key]:
                text = tool_input[key]
                break
    if not text and tool_input not in (None, {}, ""):
        text = json.dumps(tool_input, ensure_ascii=False, separators=(",", ":"))
    text = " ".join(text.split())
    if len(text) > TOOL_INPUT_CHARS:
        text = text[: TOOL_INPUT_CHARS - 1] + "…"
    return text


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str) and item)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


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
