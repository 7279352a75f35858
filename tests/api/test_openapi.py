"""``GET /api/openapi.json`` describes every REST route the app serves (issue 8)."""

from __future__ import annotations

import re

import httpx

from loop_server.api.app import create_quart_app
from loop_server.runtime import ServerHandle


async def test_document_covers_every_route(client: httpx.AsyncClient, server: ServerHandle) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    app = create_quart_app(server.services.deps)
    served = {
        (method, re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and rule.rule.startswith("/api/")  # not the console's files
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    assert served == documented
    assert ("POST", "/api/messages") in served
    assert ("GET", "/api/openapi.json") in served


async def test_bodies_and_replies_are_described(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/api/openapi.json")).json()["paths"]
    create = paths["/api/tasks"]["post"]
    schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["auto_delete_sec"] == {"type": "integer", "format": "int64"}
    assert set(create["responses"]) == {"201", "400", "404", "500"}
    patch = paths["/api/tasks/{task_id}"]["patch"]
    assert [p["name"] for p in patch["parameters"]] == ["task_id"]
    history = paths["/api/channels/{channel_id}/messages"]["get"]
    assert {p["name"] for p in history["parameters"]} == {"channel_id", "limit", "cursor"}
    assert paths["/api/messages"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "required"
    ] == ["channel_id", "content"]
