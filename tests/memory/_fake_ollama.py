"""A small HTTP server speaking Ollama's embed API, on 127.0.0.1 and an ephemeral port.

It embeds text as a bag of "concepts": each word (lower-cased, a trailing "s" dropped) is
mapped through ``SYNONYMS`` and hashed into one of ``dims`` buckets. Words that mean the same
thing therefore share a dimension, which is enough to show what the vector ranking adds to the
lexical one. ``mode`` switches it into each way a real Ollama can fail.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import h11
import trio

Mode = Literal["ok", "error", "not-json", "wrong-dims", "too-few", "hang", "close-early", "nan"]

SYNONYMS = {
    "car": "vehicle",
    "automobile": "vehicle",
    "vehicle": "vehicle",
    "truck": "vehicle",
    "physician": "doctor",
    "doctor": "doctor",
}


def embed_text(text: str, dims: int) -> list[float]:
    vector = [0.0] * dims
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        concept = SYNONYMS.get(word.removesuffix("s"), word.removesuffix("s"))
        vector[zlib.crc32(concept.encode()) % dims] += 1.0
    return vector


@dataclass
class FakeOllama:
    dims: int = 64
    mode: Mode = "ok"
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            conn = h11.Connection(h11.SERVER)
            body = bytearray()
            request: h11.Request | None = None
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(bytes(await stream.receive_some(65536)))
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
            assert request is not None
            self.paths.append(request.target.decode())
            self.headers.append({k.decode(): v.decode() for k, v in request.headers})
            payload = json.loads(body)
            self.requests.append(payload)
            status, answer = self._answer(request.target.decode(), payload)
            if self.mode == "hang":
                await trio.sleep_forever()
            if self.mode == "close-early":
                head = b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"embeddings"'
                await stream.send_all(head)
                return
            response = h11.Response(
                status_code=status,
                headers=[
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(answer))),
                ],
            )
            await stream.send_all(
                conn.send(response)
                + conn.send(h11.Data(data=answer))
                + conn.send(h11.EndOfMessage())
            )

    def _answer(self, target: str, payload: dict[str, Any]) -> tuple[int, bytes]:
        if target != "/api/embed":
            return 404, b"404 page not found"
        texts = payload["input"]
        if self.mode == "error":
            return 500, json.dumps({"error": 'model "nomic-embed-text" not found'}).encode()
        if self.mode == "not-json":
            return 200, b"<html>proxy error</html>"
        vectors = [embed_text(text, self.dims) for text in texts]
        if self.mode == "wrong-dims":
            vectors = [vector[:3] for vector in vectors]
        if self.mode == "too-few":
            vectors = vectors[:-1]
        answer = json.dumps({"model": payload["model"], "embeddings": vectors})
        if self.mode == "nan":
            answer = answer.replace("0.0", "NaN", 1)
        return 200, answer.encode()
