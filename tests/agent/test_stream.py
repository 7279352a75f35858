"""The stream-json parser on lines the real CLI printed (Claude Code 2.1.332, trimmed of keys
the parser does not read)."""

from __future__ import annotations

import json

from loop_server.agent._stream import (
    TOOL_INPUT_CHARS,
    ApiRetry,
    AssistantTurn,
    LineSplitter,
    RunResult,
    SessionStarted,
    ToolResult,
    ToolUse,
    parse_line,
    summarize,
)

SID = "37981df9-8c25-4185-a7c9-123abb90dca4"
REAL = {
    "init": {
        "type": "system",
        "subtype": "init",
        "cwd": "/w",
        "session_id": SID,
        "tools": ["Bash"],
        "model": "claude-opus-5-5",
        "permissionMode": "bypassPermissions",
    },
    "text": {
        "type": "assistant",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": "Let me run it"}],
            "stop_reason": None,
        },
        "parent_tool_use_id": None,
        "session_id": SID,
    },
    "tool": {
        "type": "assistant",
        "message": {
            "id": "msg_1",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "Bash",
                    "input": {"command": "echo hi > out.txt; echo done", "description": "write"},
                }
            ],
        },
        "session_id": SID,
    },
    "result_of_tool": {
        "type": "user",
        "message": {
            "role": "user",
            "content": [
                {
                    "tool_use_id": "toolu_1",
                    "type": "tool_result",
                    "content": "done",
                    "is_error": False,
                }
            ],
        },
        "session_id": SID,
    },
    "retry": {
        "type": "system",
        "subtype": "api_retry",
        "attempt": 1,
        "max_retries": 10,
        "retry_delay_ms": 570,
        "error_status": 401,
        "error": "authentication_failed",
        "session_id": SID,
    },
    "result": {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "num_turns": 2,
        "duration_ms": 94,
        "result": "All done",
        "stop_reason": "end_turn",
        "session_id": SID,
        "api_error_status": None,
    },
    "no_session": {
        "type": "result",
        "subtype": "error_during_execution",
        "is_error": True,
        "num_turns": 0,
        "session_id": SID,
        "errors": [f"No conversation found with session ID: {SID}"],
    },
}


def parsed(name: str) -> list[object]:
    return parse_line(json.dumps(REAL[name]).encode())


def test_each_real_line_becomes_its_event() -> None:
    assert parsed("init") == [SessionStarted(SID, "claude-opus-5-5")]
    assert parsed("text") == [AssistantTurn("Let me run it")]
    assert parsed("tool") == [ToolUse("toolu_1", "Bash", "echo hi > out.txt; echo done")]
    assert parsed("result_of_tool") == [ToolResult("toolu_1", is_error=False)]
    assert parsed("retry") == [ApiRetry(1, 10, 401, "authentication_failed", 570)]
    assert parsed("result") == [
        RunResult("All done", SID, False, num_turns=2, duration_ms=94, stop_reason="end_turn")
    ]


def test_a_failed_start_keeps_its_errors() -> None:
    [result] = parsed("no_session")
    assert isinstance(result, RunResult) and result.is_error and result.text == ""
    assert result.error_text == f"No conversation found with session ID: {SID}"


def test_a_line_with_text_and_a_tool_gives_both_in_order() -> None:
    line = {
        "type": "assistant",
        "message": {
            "content": [
                {"type": "tool_use", "id": "t", "name": "Read", "input": {"file_path": "/a"}},
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b"},
            ]
        },
    }
    assert parse_line(json.dumps(line)) == [AssistantTurn("a\nb"), ToolUse("t", "Read", "/a")]


def test_garbage_and_wrong_types_are_skipped() -> None:
    for line in (
        b"not json",
        b"[1, 2]",
        b'"text"',
        b"\xff\xfe",
        b'{"type": 5}',
        b'{"type": "assistant", "message": {"content": "x"}}',
        b'{"type": "system", "subtype": "hook"}',
    ):
        assert parse_line(line) == []
    # Wrong field types become empty values, not crashes.
    odd = {"type": "result", "result": 5, "session_id": None, "num_turns": True, "errors": [3]}
    assert parse_line(json.dumps(odd)) == [RunResult("", "", False)]


def test_tool_input_summary_is_short_and_one_line() -> None:
    assert summarize({"command": "ls\n  -la"}) == "ls -la"
    assert summarize({"pattern": "TODO", "path": "src"}) == "src"
    assert summarize({"todos": [1]}) == '{"todos":[1]}'
    assert summarize({}) == "" and summarize(None) == ""
    long = summarize({"command": "x" * 1000})
    assert len(long) == TOOL_INPUT_CHARS and long.endswith("…")


def test_line_splitter_joins_chunks() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"a":') == []
    assert splitter.feed(b"1}\n\n{") == [b'{"a":1}']
    assert splitter.flush() == [b"{"]
