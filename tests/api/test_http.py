"""Behaviour every route shares: errors as text, 404/405, CORS, preflight, limits, auth."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from loop_server.runtime import ServerHandle, run_server
from tests.api._raw import raw_request
from tests.conftest import create_channel, make_config, user_messages

TEXT = "text/plain; charset=utf-8"


async def test_unknown_path_is_go_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nope")
    assert response.status_code == 404
    assert response.text == "404 page not found\n"
    assert response.headers["content-type"] == TEXT
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    ("request_line", "status_line"),
    [
        (b"GET /api/health", b"HTTP/1.1 200 OK\r\n"),
        (b"GET /api/nope", b"HTTP/1.1 404 Not Found\r\n"),
        (b"PUT /api/channels", b"HTTP/1.1 405 Method Not Allowed\r\n"),
        (b"POST /api/messages", b"HTTP/1.1 400 Bad Request\r\n"),
        (b"GET /api/tasks/x", b"HTTP/1.1 400 Bad Request\r\n"),
        (b"OPTIONS /api/tasks", b"HTTP/1.1 204 No Content\r\n"),
    ],
)
async def test_status_lines_carry_their_reason_phrase(
    server: ServerHandle, request_line: bytes, status_line: bytes
) -> None:
    """hypercorn writes ``HTTP/1.1 404 `` with an empty phrase; Go, and we, write the phrase."""
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(
            request_line + b" HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
        )
        with trio.fail_after(10):
            head = b""
            while b"\r\n" not in head:
                head += await stream.receive_some(4096)
    assert head.startswith(status_line), head


async def test_trailing_slash_does_not_match(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/tasks/", params={"channel_id": "c"})
    assert response.status_code == 404


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/channels")
    assert response.status_code == 405
    assert response.text == "Method Not Allowed\n"
    assert response.headers["allow"] == "GET, HEAD, POST"


async def test_options_anywhere_is_cors_preflight(client: httpx.AsyncClient) -> None:
    for path in ("/api/channels", "/api/does-not-exist", "/"):
        response = await client.options(path)
        assert response.status_code == 204
        assert response.content == b""
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["access-control-allow-methods"] == (
            "GET, POST, PATCH, DELETE, OPTIONS"
        )
        assert "Content-Type" in response.headers["access-control-allow-headers"]


async def test_success_and_errors_carry_cors(client: httpx.AsyncClient) -> None:
    ok = await client.get("/api/channels")
    bad = await client.post("/api/messages", content=b"{")
    assert ok.headers["access-control-allow-origin"] == "*"
    assert bad.headers["access-control-allow-origin"] == "*"


async def test_json_bodies_are_compact_with_newline(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content.startswith(b'{"status":"ok"')
    assert response.content.endswith(b"}\n")


async def test_head_answers_like_get(client: httpx.AsyncClient) -> None:
    response = await client.head("/api/health")
    assert response.status_code == 200
    assert response.content == b""


async def test_readme_is_the_project_readme(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/readme")
    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    assert response.status_code == 200
    assert response.headers["content-type"] == TEXT
    assert response.text == readme
    assert "make run" in response.text


async def test_unclean_path_redirects(server: ServerHandle) -> None:
    status, headers, _ = await raw_request(
        server.port,
        b"GET //api//health?x=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    assert status == 301
    assert headers["location"] == "/api/health?x=1"


@pytest.mark.parametrize(
    ("target", "location"),
    [
        # The path arrives decoded: an escaped "?" must not come back as the start of a query,
        # nor anything else unescaped (Go escapes the cleaned path when it redirects).
        ("//api/channels/a%3Fb/messages", "/api/channels/a%3Fb/messages"),
        ("//api/channels/a%20b/messages?limit=5", "/api/channels/a%20b/messages?limit=5"),
        ("//api/channels/%C3%A9/messages", "/api/channels/%C3%A9/messages"),
        ("//api/channels/a%25b/messages", "/api/channels/a%25b/messages"),
        ("//api/channels/a:b@c/messages?q=%0A", "/api/channels/a:b@c/messages?q=%0A"),
        # A line break in the path was a 500 (the header was refused).
        (
            "//api/channels/a%0D%0AX-Injected:%201/messages",
            "/api/channels/a%0D%0AX-Injected:%201/messages",
        ),
    ],
)
async def test_redirect_location_is_escaped(
    server: ServerHandle, target: str, location: str
) -> None:
    status, headers, _ = await raw_request(
        server.port,
        f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode(),
    )
    assert (status, headers["location"]) == (301, location)
    assert "x-injected" not in headers


async def test_body_over_limit_is_413(client: httpx.AsyncClient, server: ServerHandle) -> None:
    size = 1024 * 1024 + 10
    head = (
        b"POST /api/messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {size}\r\n\r\n".encode()
    )
    # The answer comes from the declared length, before the body is read.
    status, headers, body = await raw_request(server.port, head, [b"{" + b" " * (size - 1)])
    assert status == 413
    assert body == b"request body too large\n"
    assert headers["content-type"] == TEXT
    history = await client.get("/api/channels/c/messages")
    assert history.json()["messages"] == []


async def test_chunked_body_over_limit_is_413(
    client: httpx.AsyncClient, server: ServerHandle
) -> None:
    head = b"POST /api/messages HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b'{"channel_id":"c","content":"' + b"y" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    status, _, body = await raw_request(server.port, head, [chunk] * 20)
    assert status == 413
    assert body == b"request body too large\n"
    history = await client.get("/api/channels/c/messages")
    assert history.json()["messages"] == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"{",
        b"[1,2]",
        b'"text"',
        b'{"channel_id": 5, "content": "x"}',
        b'{"channel_id": "c", "content": ["x"]}',
        b"\xff\xfe",
        # Python's parser takes these; Go's does not (they are not JSON).
        b'{"channel_id": "c", "content": "x", "extra": NaN}',
        b'{"channel_id": "c", "content": "x", "extra": -Infinity}',
        b'{"channel_id": "c", "content": "x", "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
)
async def test_undecodable_body_is_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/api/messages", content=body)
    assert response.status_code == 400
    assert response.text == "invalid request body\n"


async def test_unknown_fields_and_key_case(client: httpx.AsyncClient) -> None:
    channel = await create_channel(client, "c")
    body = b'{"Channel_ID":"%s","content":"hi","extra":{"a":1}} \r\n' % channel.encode()
    response = await client.post("/api/messages", content=body)
    assert response.status_code == 204
    history = (await client.get(f"/api/channels/{channel}/messages")).json()
    assert [m["content"] for m in user_messages(history)] == ["hi"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/messages", b'{"channel_id":"%s","content":"hi"} trailing garbage'),
        ("/api/messages", b'{"channel_id":"%s","content":"hi"}{"content":"again"}'),
        ("/api/messages", b'{"channel_id":"%s","content":"hi"}]'),
        ("/api/tasks", b'{"channel_id":"%s","type":"interval","schedule":"1h","prompt":"p"},'),
        ("/api/commands", b'{"channel_id":"%s","command":"status"} x'),
    ],
)
async def test_trailing_data_after_the_body_is_400_and_changes_nothing(
    client: httpx.AsyncClient, path: str, body: bytes
) -> None:
    """Upstream reads the first JSON value and ignores the rest; a concatenation or a stray
    character then passed silently. Here it is a bad body."""
    channel = await create_channel(client, "c")
    response = await client.post(path, content=body % channel.encode())
    assert (response.status_code, response.text) == (400, "invalid request body\n")
    history = (await client.get(f"/api/channels/{channel}/messages")).json()
    assert history["messages"] == []
    assert (await client.get("/api/tasks", params={"channel_id": channel})).json() == []


async def test_any_integer_literal_is_a_number(client: httpx.AsyncClient) -> None:
    # Python refuses to convert more than 4300 digits; Go reads the number and skips the field.
    channel = await create_channel(client, "c1")
    body = b'{"channel_id":"%s","content":"hi","extra":' % channel.encode() + b"1" * 5000 + b"}"
    response = await client.post("/api/messages", content=body)
    assert response.status_code == 204, response.text
    history = (await client.get(f"/api/channels/{channel}/messages")).json()
    assert [m["content"] for m in user_messages(history)] == ["hi"]
    # In an integer field it is out of int64's range: a bad body, as in Go.
    body = b'{"type":"interval","schedule":"1h","auto_delete_sec":' + b"9" * 5000 + b"}"
    response = await client.post("/api/tasks", content=body)
    assert (response.status_code, response.text) == (400, "invalid request body\n")


async def test_lone_surrogate_escape_is_replacement_char(client: httpx.AsyncClient) -> None:
    # Valid JSON that is not valid Unicode: Go decodes it as U+FFFD (it used to be a 500).
    body = b'{"name":"a\\ud800b\\udc00","author_id":"u"}'
    response = await client.post("/api/channels/create", content=body)
    assert response.status_code == 201, response.text
    [channel] = (await client.get("/api/channels")).json()
    assert channel["name"] == "a\ufffdb\ufffd"
    # A proper pair is one character, as before.
    body = (
        b'{"channel_id":"%s","content":"\\ud83d\\ude00 \\udbff"}' % channel["channel_id"].encode()
    )
    assert (await client.post("/api/messages", content=body)).status_code == 204
    history = (await client.get(f"/api/channels/{channel['channel_id']}/messages")).json()
    assert [m["content"] for m in user_messages(history)] == ["\U0001f600 \ufffd"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("DELETE", "/api/tasks/1", None, 204),
        ("PATCH", "/api/tasks/1", b'{"enabled":false}', 200),
        ("DELETE", "/api/channels/{channel}", None, 204),
        ("POST", "/api/messages", b'{"channel_id":"{channel}","content":"hi"}', 204),
        ("POST", "/api/commands", b'{"channel_id":"{channel}","command":"status"}', 204),
    ],
)
async def test_empty_answers_claim_no_content_type(
    server: ServerHandle,
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: bytes | None,
    status: int,
) -> None:
    channel = (await client.post("/api/channels/create", json={"name": "n"})).json()["channel_id"]
    task = {"channel_id": channel, "type": "interval", "schedule": "1h", "prompt": "p"}
    assert (await client.post("/api/tasks", json=task)).status_code == 201
    head = f"{method} {path.format(channel=channel)} HTTP/1.1\r\nHost: localhost\r\n"
    if body is not None:
        body = body.replace(b"{channel}", channel.encode())
        head += f"Content-Length: {len(body)}\r\n"
    got, headers, content = await raw_request(
        server.port, (head + "Connection: close\r\n\r\n").encode() + (body or b"")
    )
    assert (got, content) == (status, b"")
    # Go writes only the status: no Content-Type (Quart's default claimed text/html), and a
    # 204 carries no Content-Length (RFC 9110 section 8.6).
    assert "content-type" not in headers
    if status == 204:
        assert "content-length" not in headers
    else:
        assert headers["content-length"] == "0"
    assert headers["access-control-allow-origin"] == "*"


class TestToken:
    TOKEN = "s3cret-token"

    @pytest.fixture
    async def secured(self, nursery: trio.Nursery, tmp_path: Path) -> ServerHandle:
        config = make_config(tmp_path, token=self.TOKEN)
        handle: ServerHandle = await nursery.start(run_server, config)
        return handle

    async def test_rest_needs_bearer_token(self, secured: ServerHandle) -> None:
        async with httpx.AsyncClient(base_url=secured.url) as http:
            missing = await http.get("/api/channels")
            wrong = await http.get("/api/channels", headers={"Authorization": "Bearer nope"})
            query = await http.get("/api/channels", params={"token": self.TOKEN})
            right = await http.get(
                "/api/channels", headers={"Authorization": f"Bearer {self.TOKEN}"}
            )
            unknown = await http.get("/api/nope")
        assert missing.status_code == 401
        assert missing.text == "unauthorized\n"
        for refused in (missing, wrong, query, unknown):
            assert refused.headers["www-authenticate"] == "Bearer"
        assert "www-authenticate" not in right.headers
        assert wrong.status_code == 401
        assert query.status_code == 401  # plain HTTP must use the header
        assert unknown.status_code == 401  # no route probing without the token
        assert right.status_code == 200
        assert right.json() == []
        secured.shutdown()

    async def test_health_and_preflight_stay_open(self, secured: ServerHandle) -> None:
        async with httpx.AsyncClient(base_url=secured.url) as http:
            health = await http.get("/api/health")
            preflight = await http.options("/api/channels")
        assert health.status_code == 200
        assert preflight.status_code == 204
        secured.shutdown()

    async def test_events_socket_needs_the_token(self, secured: ServerHandle) -> None:
        upgrade = (
            "GET /api/ws{query} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{auth}\r\n"
        )
        refused = await raw_request(secured.port, upgrade.format(query="", auth="").encode())
        assert refused[0] == 401
        assert refused[2] == b"unauthorized\n"
        assert refused[1]["www-authenticate"] == "Bearer"
        wrong = await raw_request(secured.port, upgrade.format(query="?token=x", auth="").encode())
        assert wrong[0] == 401
        assert wrong[1]["www-authenticate"] == "Bearer"
        for path in ("/api/ws", "/api/ws/terminal"):
            # The second request of a keep-alive connection reaches hypercorn's path.
            reused = (
                b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"
                + upgrade.replace("/api/ws{query}", path).format(auth="").encode()
            )
            stream = await trio.open_tcp_stream("127.0.0.1", secured.port)
            async with stream:
                await stream.send_all(reused)
                with trio.fail_after(10):
                    answers = b""
                    while answers.count(b"HTTP/1.1 ") < 2 or not answers.endswith(b"\n"):
                        answers += await stream.receive_some(4096)
            second = answers[answers.index(b"HTTP/1.1 ", 1) :].lower()
            assert second.startswith(b"http/1.1 401 unauthorized\r\n"), second
            assert b"\r\nwww-authenticate: bearer\r\n" in second
        for query, auth in (
            (f"?token={self.TOKEN}", ""),
            ("", f"Authorization: Bearer {self.TOKEN}\r\n"),
        ):
            stream = await trio.open_tcp_stream("127.0.0.1", secured.port)
            async with stream:
                await stream.send_all(upgrade.format(query=query, auth=auth).encode())
                with trio.fail_after(10):
                    head = b""
                    while b"\r\n\r\n" not in head:
                        head += await stream.receive_some(4096)
            assert head.startswith(b"HTTP/1.1 101 ")
        secured.shutdown()


CHANNELS_501 = "channel creation not configured (discord_guild_id not set or Slack not configured)"
HISTORY_501 = "message listing not configured"


@pytest.mark.parametrize(
    ("missing", "method", "path", "body", "text"),
    [
        ("store", "GET", "/api/channels", None, "channel listing not configured"),
        ("channels", "POST", "/api/channels", b"{", CHANNELS_501),
        ("channels", "POST", "/api/channels/create", b"{", CHANNELS_501),
        ("store", "DELETE", "/api/channels/c1", None, "channel deletion not configured"),
        ("store", "GET", "/api/channels/c/messages?limit=x", None, HISTORY_501),
        ("threads", "POST", "/api/threads", b"{", "thread creation not configured"),
        ("threads", "DELETE", "/api/threads/t1", None, "thread deletion not configured"),
    ],
)
async def test_missing_collaborator_is_501_first(
    server: ServerHandle,
    client: httpx.AsyncClient,
    missing: str,
    method: str,
    path: str,
    body: bytes | None,
    text: str,
) -> None:
    setattr(server.services.deps, missing, None)
    response = await client.request(method, path, content=body)
    assert (response.status_code, response.text) == (501, text + "\n")
    assert response.headers["content-type"] == TEXT


async def test_messages_without_handler_or_sender(
    server: ServerHandle, client: httpx.AsyncClient
) -> None:
    deps = server.services.deps
    deps.incoming = None
    deps.messages = None
    # The body is checked before the configuration (SPEC §3.4).
    bad = await client.post("/api/messages", content=b"{")
    assert (bad.status_code, bad.text) == (400, "invalid request body\n")
    response = await client.post("/api/messages", json={"channel_id": "c1", "content": "hi"})
    assert (response.status_code, response.text) == (501, "message sending not configured\n")
