"""A fake Anthropic Messages API for tests that run the real ``claude`` CLI.

The model is the one part that cannot exist here, so this stands in for it — speaking the real
wire protocol: ``POST /v1/messages`` answered as an SSE stream (``message_start``,
``content_block_start``/``delta``/``stop``, ``message_delta``, ``message_stop``) when the request
says ``"stream": true`` and as one JSON message otherwise; errors as
``{"type": "error", "error": {"type": ..., "message": ...}}`` with the real status codes.

Each test scripts the replies of the *main* conversation (requests that offer tools): each one
takes the next scripted ``Reply``. Side requests the CLI makes on its own (titles, quota checks,
token counts: requests without tools) get a short canned answer and never consume the script.
Every request is recorded, so a test can check what the CLI sent (e.g. earlier turns on resume).

It serves on any listening socket it is given — in the tests, one created inside a
``--network none`` container's network namespace — with Trio and h11, one task per connection.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import h11
import trio

_ids = itertools.count(1)


@dataclass(frozen=True)
class ToolCall:
    """A ``tool_use`` block: the model asks the CLI to run ``name`` with ``input``."""

    name: str
    input: dict[str, Any]
    id: str = field(default_factory=lambda: f"toolu_fake{next(_ids):06d}")


@dataclass(frozen=True)
class Reply:
    """One scripted answer of the model: text and/or tool calls, or an API error.

    ``status`` other than 200 makes it an error response with ``error_type`` and ``text`` as
    the message. ``hang`` never answers (for stop and timeout tests)."""

    text: str = ""
    tools: tuple[ToolCall, ...] = ()
    status: int = 200
    error_type: str = ""
    hang: bool = False

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tools else "end_turn"


def error(status: int, error_type: str, message: str) -> Reply:
    return Reply(text=message, status=status, error_type=error_type)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def is_main(self) -> bool:
        return bool(self.body.get("tools"))

    def texts(self) -> list[str]:
        """Every text the request carries in its messages (user and assistant turns)."""
        found: list[str] = []
        for message in self.body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                found.append(content)
                continue
            for block in content or []:
                if block.get("type") == "text":
                    found.append(block.get("text", ""))
                elif block.get("type") == "tool_result":
                    inner = block.get("content")
                    if isinstance(inner, str):
                        found.append(inner)
                    else:
                        found.extend(b.get("text", "") for b in inner or [] if isinstance(b, dict))
        return found


SIDE_ANSWER = "ok"


class FakeAnthropic:
    def __init__(self, script: list[Reply] | None = None, model: str = "claude-fake-1") -> None:
        self.script: list[Reply] = list(script or [])
        self.model = model
        self.requests: list[Recorded] = []
        self.changed = trio.Event()
        # Replies for main requests once the script runs out (a test that did not plan for
        # one more turn gets a plain text instead of a hang).
        self.fallback = Reply(text="(the fake API's script is exhausted)")

    @property
    def main_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.is_main]

    def add(self, *replies: Reply) -> None:
        self.script.extend(replies)

    async def serve(self, listener: trio.SocketListener) -> None:
        await trio.serve_listeners(self._connection, [listener])

    async def wait_main_requests(self, count: int) -> None:
        while len(self.main_requests) < count:
            await self.changed.wait()

    # -- HTTP ---------------------------------------------------------------------------

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        async with stream:
            try:
                while True:
                    request, body = await _read_request(conn, stream)
                    if request is None:
                        return
                    await self._answer(conn, stream, request, body)
                    if conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
            except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
                return

    async def _answer(
        self, conn: h11.Connection, stream: trio.SocketStream, request: h11.Request, body: bytes
    ) -> None:
        path = request.target.decode("latin-1")
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
        send = _Sender(conn, stream)
        if request.method != b"POST" or not path.split("?")[0].startswith("/v1/messages"):
            await send.json(404, _error_body("not_found_error", f"no route {path}"))
            return
        try:
            payload = json.loads(body)
        except ValueError:
            await send.json(400, _error_body("invalid_request_error", "body is not JSON"))
            return
        recorded = Recorded(path, headers, payload)
        self.requests.append(recorded)
        self.changed.set()
        self.changed = trio.Event()
        if path.split("?")[0].endswith("/count_tokens"):
            await send.json(200, {"input_tokens": 100})
            return
        reply = self._next(recorded)
        if reply.hang:
            await trio.sleep_forever()
        if reply.status != 200:
            await send.json(reply.status, _error_body(reply.error_type, reply.text))
            return
        message_id = f"msg_fake{next(_ids):06d}"
        if payload.get("stream"):
            await send.sse(_sse_events(reply, message_id, self.model))
        else:
            await send.json(200, _message(reply, message_id, self.model))

    def _next(self, recorded: Recorded) -> Reply:
        if not recorded.is_main:
            return Reply(text=SIDE_ANSWER)
        return self.script.pop(0) if self.script else self.fallback


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _usage(output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": 10,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    for tool in reply.tools:
        blocks.append({"type": "tool_use", "id": tool.id, "name": tool.name, "input": tool.input})
    return blocks


def _message(reply: Reply, message_id: str, model: str) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _blocks(reply),
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": _usage(5),
    }


def _sse_events(reply: Reply, message_id: str, model: str) -> list[tuple[str, dict[str, Any]]]:
    start = _message(reply, message_id, model) | {
        "content": [],
        "stop_reason": None,
        "usage": _usage(1),
    }
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": start})]
    for index, block in enumerate(_blocks(reply)):
        if block["type"] == "text":
            events.append(
                (
                    "content_block_start",
                    {"index": index, "content_block": {"type": "text", "text": ""}},
                )
            )
            # Two deltas, as a real stream splits text: the CLI must join them.
            text = block["text"]
            half = len(text) // 2
            for piece in (text[:half], text[half:]):
                if piece:
                    delta = {"type": "text_delta", "text": piece}
                    events.append(("content_block_delta", {"index": index, "delta": delta}))
        else:
            empty = block | {"input": {}}
            events.append(("content_block_start", {"index": index, "content_block": empty}))
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events.append(("content_block_delta", {"index": index, "delta": delta}))
        events.append(("content_block_stop", {"index": index}))
    events.append(
        (
            "message_delta",
            {
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
        )
    )
    events.append(("message_stop", {}))
    return [(name, {"type": name} | data) for name, data in events]


class _Sender:
    def __init__(self, conn: h11.Connection, stream: trio.SocketStream) -> None:
        self._conn = conn
        self._stream = stream

    async def _send(self, event: h11.Event) -> None:
        data = self._conn.send(event)
        if data:
            await self._stream.send_all(data)

    async def json(self, status: int, value: dict[str, Any]) -> None:
        body = json.dumps(value).encode()
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("request-id", f"req_fake{next(_ids):06d}"),
        ]
        await self._send(h11.Response(status_code=status, headers=headers))
        await self._send(h11.Data(data=body))
        await self._send(h11.EndOfMessage())

    async def sse(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("request-id", f"req_fake{next(_ids):06d}"),
        ]
        await self._send(h11.Response(status_code=200, headers=headers))
        for name, data in events:
            chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            await self._send(h11.Data(data=chunk))
        await self._send(h11.EndOfMessage())


async def _read_request(
    conn: h11.Connection, stream: trio.SocketStream
) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            if not data:
                return None, b""
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None, b""
