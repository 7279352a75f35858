"""The hot routes' lean path (api/_lean.py) answers as their Quart views do (issue 15)."""

from __future__ import annotations

import httpx
import pytest

from loop_server.api._lean import (
    NO_CONTENT,
    Answer,
    LeanRoutes,
    json_answer,
    text_answer,
    to_response,
)
from loop_server.api._routes import Route
from loop_server.api.app import create_quart_app
from loop_server.runtime import ServerHandle


async def _core(*args: object) -> object:
    return args


def test_match_follows_werkzeug_rules() -> None:
    routes = LeanRoutes()
    routes.add(Route("GET", "/api/health", "", {}), _core)
    routes.add(Route("GET", "/api/tasks/<task_id>", "", {}), _core)
    routes.add(Route("GET", "/api/channels/<channel_id>/messages", "", {}), _core)
    assert routes.match("GET", "/api/health") == (_core, ())
    assert routes.match("GET", "/api/tasks/12") == (_core, ("12",))
    assert routes.match("GET", "/api/channels/abc/messages") == (_core, ("abc",))
    # Not ours: Quart decides (404, 405, HEAD, a trailing slash's redirect).
    assert routes.match("HEAD", "/api/health") is None
    assert routes.match("POST", "/api/tasks/12") is None
    assert routes.match("GET", "/api/tasks/") is None
    assert routes.match("GET", "/api/tasks/12/") is None
    assert routes.match("GET", "/api/channels//messages") is None
    assert routes.match("GET", "/api/tasks/12/runs") is None


@pytest.mark.parametrize(
    "answer", [json_answer({"id": 1}, 201), text_answer("task not found", 404), NO_CONTENT]
)
async def test_the_quart_response_of_an_answer_has_its_headers(answer: Answer) -> None:
    response = to_response(answer)
    assert response.status_code == answer.status
    assert [(k.lower(), v) for k, v in response.headers.items()] == [
        (k.decode(), v.decode()) for k, v in answer.headers
    ]
    assert await response.get_data(as_text=False) == answer.body


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/tasks/nope", None),
        ("GET", "/api/tasks/424242", None),
        ("GET", "/api/channels/c1/messages?limit=x", None),
        ("GET", "/api/channels/c1/messages?limit=2", None),
        ("POST", "/api/messages", b"[1"),
        ("POST", "/api/messages", b'{"channel_id": "c1"}'),
        ("POST", "/api/commands", b'{"channel_id": "c1", "command": "nosuch"}'),
        ("POST", "/api/tasks", b'{"channel_id": "c1", "schedule": "bad", "type": "cron"}'),
    ],
)
async def test_lean_and_quart_answer_alike(
    client: httpx.AsyncClient,
    server: ServerHandle,
    method: str,
    path: str,
    body: bytes | None,
) -> None:
    lean = await client.request(method, path, content=body)
    quart = (
        await create_quart_app(server.services.deps)
        .test_client()
        .open(path, method=method, data=body or b"")
    )
    assert lean.status_code == quart.status_code
    assert lean.content == await quart.get_data(as_text=False)
    for name in ("content-type", "content-length", "x-content-type-options"):
        assert lean.headers.get(name) == quart.headers.get(name)
