"""The security rules (docs/operations.md, "What is protected"), one test per rule, on the real
server (``run_server`` on 127.0.0.1, port 0).

The routes come from the Quart app's ``url_map``, so a route added later is covered without
touching this file. tests/api/test_http.py has the first cases of several rules (one route's
token, the events socket's token, the 413 of ``POST /api/messages``); this module extends them
to every route and to both WebSocket paths (the listener's fast path and a reused keep-alive
connection, which hypercorn serves), and adds the bind rule, the configurable limits and
fragmented WebSocket messages. ``/api/ws/terminal`` is covered like ``/api/ws``: a 404 or 501
there is a failure, never a skip.

Rules as in tests/conftest.py: loopback only, every wait under ``trio.fail_after``.
"""

from __future__ import annotations

import hmac
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from loop_server.api import _gateway
from loop_server.api.app import create_quart_app
from loop_server.config import ConfigError, load_config
from loop_server.runtime import ServerHandle
from tests.api._raw import raw_request
from tests.conftest import create_channel
from tests.events.events_helpers import RawClient, client_frame
from tests.hardening._process import CLI, server_env
from tests.hardening._servers import StartServer
from tests.hardening._websocket import close_code_after, open_upgrade

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TEXT = "text/plain; charset=utf-8"
LIMIT = 1024 * 1024
DEADLINE = 20
WS_PATHS = ("/api/ws", "/api/ws/terminal")
OP_TEXT, OP_BINARY, OP_CONTINUATION = 0x1, 0x2, 0x0


# -- the server and its routes ---------------------------------------------------------------


@pytest.fixture
async def secured(start_server: StartServer) -> ServerHandle:
    handle: ServerHandle = await start_server(token=TOKEN)
    return handle


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with sample values for its variables
    websocket: bool

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


_VARIABLE = re.compile(r"<[^>]+>")


def endpoints(server: ServerHandle) -> list[Endpoint]:
    """Every route of the app, each method separately, variables filled with samples."""
    app = create_quart_app(server.services.deps)
    found = []
    for rule in app.url_map.iter_rules():
        # Every variable, whatever its converter (Quart's own /static/<path:filename> too).
        path = _VARIABLE.sub("1", rule.rule)
        websocket = bool(getattr(rule, "websocket", False))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append(Endpoint(method, path, websocket))
    return found


def rest_endpoints(server: ServerHandle) -> list[Endpoint]:
    # The open paths (health, the console's static page and assets) are tested on their own.
    found = [e for e in endpoints(server) if not e.websocket and not _gateway.is_open(e.path)]
    # The route table of SPEC §2 plus ours; fewer means the url_map was not what we think.
    assert len(found) >= 17, found
    return found


def body_endpoints(server: ServerHandle) -> list[Endpoint]:
    return [e for e in rest_endpoints(server) if e.method in ("POST", "PATCH", "PUT")]


# -- raw WebSocket handshakes ----------------------------------------------------------------


async def upgrade_status(port: int, path: str, headers: str = "", *, reuse: bool = False) -> int:
    client, _ = await open_upgrade(port, path, headers, reuse=reuse)
    async with client:
        return client.status


# -- token: every REST route -----------------------------------------------------------------


async def test_every_rest_route_needs_the_bearer_token(secured: ServerHandle) -> None:
    refusals = {
        "no token": {},
        "wrong token": {"Authorization": "Bearer nope"},
        "token with a suffix": {"Authorization": f"Bearer {TOKEN}x"},
        "token prefix": {"Authorization": f"Bearer {TOKEN[:-1]}"},
        "other scheme": {"Authorization": f"Basic {TOKEN}"},
        "bare token": {"Authorization": TOKEN},
    }
    with trio.fail_after(DEADLINE):
        async with httpx.AsyncClient(base_url=secured.url) as http:
            for endpoint in rest_endpoints(secured):
                for what, headers in refusals.items():
                    response = await http.request(endpoint.method, endpoint.path, headers=headers)
                    assert response.status_code == 401, f"{endpoint} with {what}"
                    assert response.text == "unauthorized\n", f"{endpoint} with {what}"
                    assert response.headers["content-type"] == TEXT
                    assert response.headers["access-control-allow-origin"] == "*"
                # ?token= is for WebSocket clients only (query strings end up in logs).
                query = await http.request(endpoint.method, endpoint.path, params={"token": TOKEN})
                assert query.status_code == 401, f"{endpoint} with ?token="
                allowed = await http.request(endpoint.method, endpoint.path, headers=AUTH)
                assert allowed.status_code != 401, f"{endpoint} refused the right token"
                lower = await http.request(
                    endpoint.method, endpoint.path, headers={"authorization": f"bearer {TOKEN}"}
                )
                assert lower.status_code != 401, (
                    f"{endpoint}: header names and scheme are case-free"
                )


async def test_preflights_and_health_stay_open(secured: ServerHandle) -> None:
    with trio.fail_after(DEADLINE):
        async with httpx.AsyncClient(base_url=secured.url) as http:
            for endpoint in endpoints(secured):
                preflight = await http.options(endpoint.path)
                assert preflight.status_code == 204, endpoint
                assert preflight.content == b""
                assert "Authorization" in preflight.headers["access-control-allow-headers"]
            for method in ("GET", "HEAD"):
                health = await http.request(method, "/api/health")
                assert health.status_code == 200, method


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway (REST) and the events and terminal handshakes all go through
    ``hmac.compare_digest``; a plain ``==`` would leak the token's prefix through timing."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    headers = [(b"authorization", b"Bearer guess")]
    assert not _gateway.authorized(TOKEN, headers, b"", allow_query=False)
    assert not _gateway.events_authorizer(TOKEN)([], {"token": "guess"})
    assert compared == [(TOKEN.encode(), b"guess"), (TOKEN.encode(), b"guess")]


# -- token: WebSocket upgrades ---------------------------------------------------------------


def websocket_paths(server: ServerHandle) -> list[str]:
    """The WebSocket routes: ours served on the socket plus any the Quart app declares."""
    declared = [e.path for e in endpoints(server) if e.websocket]
    return sorted({*WS_PATHS, *declared})


@pytest.mark.parametrize("reuse", [False, True], ids=["fast-path", "keep-alive"])
async def test_websocket_upgrades_need_the_token(secured: ServerHandle, reuse: bool) -> None:
    with trio.fail_after(DEADLINE):
        checked = []
        for path in websocket_paths(secured):
            good_query = f"{path}?token={TOKEN}"
            status = await upgrade_status(secured.port, good_query, reuse=reuse)
            if path == "/api/ws/terminal" and status in (404, 501):
                continue  # not served yet
            assert status == 101, f"{path}?token= refused"
            header = f"Authorization: Bearer {TOKEN}\r\n"
            assert await upgrade_status(secured.port, path, header, reuse=reuse) == 101, path
            for resource, headers in (
                (path, ""),
                (f"{path}?token=nope", ""),
                (f"{path}?token={TOKEN}x", ""),
                (path, "Authorization: Bearer nope\r\n"),
            ):
                client, body = await open_upgrade(secured.port, resource, headers, reuse=reuse)
                async with client:
                    assert client.status == 401, (resource, headers)
                    assert body == b"unauthorized\n", (resource, headers)
            checked.append(path)
        assert "/api/ws" in checked


# -- binding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "addr"),
    [
        ("flag", "0.0.0.0:0"),
        ("flag", "[::]:0"),
        ("flag", ":0"),
        ("flag", "192.0.2.10:0"),
        ("flag", "example.com:0"),
        ("env", "0.0.0.0:0"),
        ("config", "0.0.0.0:0"),
        ("empty token", "0.0.0.0:0"),
    ],
)
async def test_non_loopback_bind_without_a_token_is_refused(
    tmp_path: Path, how: str, addr: str
) -> None:
    data_dir = tmp_path / "data"
    args = ["serve", "--data-dir", str(data_dir)]
    extra: dict[str, str] = {}
    if how == "flag":
        args += ["--addr", addr]
    elif how == "env":
        extra["LOOP_ADDR"] = addr
    elif how == "config":
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"api_addr": addr}))
        args += ["--config", str(config)]
    else:
        args += ["--addr", addr, "--token", ""]
    with trio.fail_after(DEADLINE):
        result = await trio.run_process(
            [*CLI, *args],
            env=server_env(tmp_path, **extra),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 2, result.stderr
    assert b"refusing to listen on" in result.stderr
    assert b"without a token" in result.stderr
    assert not (data_dir / "loop.db").exists()  # refused before anything was created


@pytest.mark.parametrize("addr", ["127.0.0.1:0", "127.8.9.10:0", "localhost:0", "[::1]:0"])
def test_loopback_needs_no_token(addr: str) -> None:
    assert load_config({"addr": addr}, {}).token == ""


def test_a_token_allows_other_addresses() -> None:
    # Checked without binding: tests listen on loopback only.
    assert load_config({"addr": "0.0.0.0:8222", "token": TOKEN}, {}).token == TOKEN
    with pytest.raises(ConfigError):
        load_config({"addr": "0.0.0.0:8222"}, {"LOOP_API_TOKEN": ""})


# -- body limit ------------------------------------------------------------------------------


async def test_every_body_route_refuses_a_declared_length_over_the_limit(
    secured: ServerHandle,
) -> None:
    for endpoint in body_endpoints(secured):
        head = (
            f"{endpoint.method} {endpoint.path} HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {LIMIT + 1}\r\n\r\n"
        ).encode()
        # Answered from the header alone: the body is never sent.
        status, headers, body = await raw_request(secured.port, head)
        assert (status, body) == (413, b"request body too large\n"), endpoint
        assert headers["content-type"] == TEXT


#: Routes that read a JSON body, with a field the oversized chunked body fills.
CHUNKED = [
    ("POST", "/api/channels", "dir_path"),
    ("POST", "/api/channels/create", "name"),
    ("POST", "/api/threads", "name"),
    ("POST", "/api/tasks", "prompt"),
    ("PATCH", "/api/tasks/1", "prompt"),
    ("POST", "/api/memory/search", "query"),
    ("POST", "/api/memory/index", "dir_path"),
]


@pytest.mark.parametrize(("method", "path", "field"), CHUNKED)
async def test_chunked_body_over_the_limit_is_413(
    start_server: StartServer, method: str, path: str, field: str
) -> None:
    server = await start_server()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = f'{{"{field}":"'.encode() + b"y" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    status, _, body = await raw_request(server.port, head, [chunk] * 20)
    assert (status, body) == (413, b"request body too large\n")
    async with httpx.AsyncClient(base_url=server.url) as http:
        # Nothing was created on the way.
        assert (await http.get("/api/channels")).json() == []
        assert (await http.get("/api/tasks", params={"channel_id": "c"})).json() == []


async def test_the_body_limit_is_configurable(start_server: StartServer) -> None:
    server = await start_server(max_body_bytes=1000)
    async with httpx.AsyncClient(base_url=server.url) as http:
        # 1000 bytes exactly are read (and found to be valid JSON); 1001 are not.
        channel = await create_channel(http, "c")
        content = "x" * (1000 - len('{"channel_id":"","content":""}') - len(channel))
        body = json.dumps({"channel_id": channel, "content": content}, separators=(",", ":"))
        assert len(body) == 1000
        assert (await http.post("/api/messages", content=body)).status_code == 204
        over = await http.post("/api/messages", content=body + " ")
        assert (over.status_code, over.text) == (413, "request body too large\n")

    head = b"POST /api/messages HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = [f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body.encode(), b" ")]
    status, _, _ = await raw_request(server.port, head, [*chunks, b"0\r\n\r\n"])
    assert status == 413


# -- WebSocket message limit -----------------------------------------------------------------


async def open_websocket(server: ServerHandle, path: str, *, reuse: bool) -> RawClient:
    client, _ = await open_upgrade(server.port, path, reuse=reuse)
    assert client.status == 101, client.head
    return client


@pytest.mark.parametrize("reuse", [False, True], ids=["fast-path", "keep-alive"])
@pytest.mark.parametrize("path", WS_PATHS)
async def test_websocket_message_over_the_limit_closes_1009(
    start_server: StartServer, path: str, reuse: bool
) -> None:
    server = await start_server()
    with trio.fail_after(DEADLINE):
        async with await open_websocket(server, path, reuse=reuse) as client:
            frame = client_frame(OP_TEXT, b"x" * (LIMIT + 1))
            assert await close_code_after(client, [frame]) == 1009


@pytest.mark.parametrize("reuse", [False, True], ids=["fast-path", "keep-alive"])
@pytest.mark.parametrize("path", WS_PATHS)
async def test_fragmented_message_over_the_limit_closes_1009(
    start_server: StartServer, path: str, reuse: bool
) -> None:
    """Many small frames of one message count together."""
    server = await start_server()
    piece = b"x" * 65536
    frames = [client_frame(OP_BINARY, piece, fin=False)]
    frames += [client_frame(OP_CONTINUATION, piece, fin=False) for _ in range(16)]
    frames.append(client_frame(OP_CONTINUATION, b"", fin=True))
    with trio.fail_after(DEADLINE):
        async with await open_websocket(server, path, reuse=reuse) as client:
            assert await close_code_after(client, frames) == 1009


@pytest.mark.parametrize("reuse", [False, True], ids=["fast-path", "keep-alive"])
async def test_the_websocket_limit_is_configurable(start_server: StartServer, reuse: bool) -> None:
    server = await start_server(max_ws_message_bytes=1000)
    with trio.fail_after(DEADLINE):
        async with await open_websocket(server, "/api/ws", reuse=reuse) as client:
            # At the limit: read, and the connection stays (a ping gets its pong).
            await client.send(client_frame(OP_TEXT, b" " * 1000))
            await client.send(client_frame(0x9, b"still there?"))
            assert await client.receive_frame() == (0xA, b"still there?")
            frame = client_frame(OP_TEXT, b" " * 1001)
            assert await close_code_after(client, [frame]) == 1009
