"""No drive-by: the Origin and Host rules (SPEC A.2), one test per rule, over plain HTTP.

What a web page in the user's browser sends is sent here by hand (``Origin``, ``Host``,
``Content-Type: text/plain``), against the real server (``run_server`` on 127.0.0.1, port 0) and,
for the WebSocket paths, on the listener's fast path and on a reused keep-alive connection
(hypercorn's ASGI fallback) alike. tests/browser/test_drive_by.py makes a real Chromium send
the same things. Every refused request must also leave nothing behind: no message, no task, no
terminal session. Rules as in tests/conftest.py: loopback only, every wait under a deadline.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from loop_server.api._gateway import Gateway
from loop_server.config import ConfigError, load_config
from loop_server.origin_policy import (
    ANY_ORIGIN,
    OriginPolicy,
    normalize_host,
    normalize_origin,
)
from loop_server.runtime import ServerHandle, origin_policy
from loop_server.serving import EventsEndpoint, serve
from tests.api._raw import raw_request
from tests.conftest import create_channel, make_config
from tests.events.events_helpers import allow_all, make_app
from tests.hardening._servers import StartServer
from tests.hardening._websocket import open_upgrade
from tests.terminal.terminal_helpers import hypercorn_config

EVIL = "http://evil.example"
DEADLINE = 20
WS_PATHS = ("/api/ws", "/api/ws/terminal")
PATHS = ["fast-path", "keep-alive"]


@pytest.fixture
async def server(start_server: StartServer) -> ServerHandle:
    handle: ServerHandle = await start_server()
    return handle


@pytest.fixture
async def http(server: ServerHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as client:
        yield client


def own_origin(server: ServerHandle) -> str:
    return f"http://127.0.0.1:{server.port}"


async def nothing_was_created(http: httpx.AsyncClient, channel_id: str) -> None:
    """The channel has no message and no task (asked the way a script would: no Origin)."""
    history = await http.get(f"/api/channels/{channel_id}/messages")
    assert history.status_code == 200, history.text
    assert history.json()["messages"] == []
    tasks = await http.get("/api/tasks", params={"channel_id": channel_id})
    assert tasks.status_code == 200, tasks.text
    assert tasks.json() == []


# -- the rules, without a server ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("http://Example.COM", "http://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("https://example.com:443/", "https://example.com"),
        ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
        ("http://[::1]:8222", "http://[::1]:8222"),
    ],
)
def test_origins_are_normalised_as_browsers_send_them(given: str, normal: str) -> None:
    assert normalize_origin(given) == normal


@pytest.mark.parametrize(
    "bad", ["*", "null", "example.com", "ftp://example.com", "http://x/path", "http://x:port", ""]
)
def test_a_setting_that_is_not_an_origin_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        normalize_origin(bad)


@pytest.mark.parametrize("bad", ["*", "*.example.com", "example.com:8222", "http://x", ""])
def test_a_setting_that_is_not_a_host_name_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a host name"):
        normalize_host(bad)


def test_the_verdicts() -> None:
    policy = OriginPolicy(["http://127.0.0.1:5173"], ["loop.internal"])
    host = (b"host", b"127.0.0.1:8222")

    def judge(*headers: tuple[bytes, bytes], over_tcp: bool = True) -> tuple[Any, str | None]:
        verdict = policy.judge(headers, over_tcp=over_tcp)
        return dict(verdict.cors).get(b"access-control-allow-origin"), verdict.refusal

    assert judge(host) == (b"*", None)  # no Origin: a script, upstream's answer
    assert judge() == (b"*", None)  # HTTP/1.0 without Host: no browser
    assert judge(host, (b"origin", b"http://127.0.0.1:8222")) == (b"http://127.0.0.1:8222", None)
    assert judge(host, (b"Origin", b"http://127.0.0.1:5173")) == (b"http://127.0.0.1:5173", None)
    # Behind a TLS proxy that passes Host on, the console's origin is https://<Host>.
    assert judge((b"host", b"loop.internal"), (b"origin", b"https://loop.internal")) == (
        b"https://loop.internal",
        None,
    )
    for refused in (EVIL, "null", "http://127.0.0.1:8223", "http://127.0.0.1", "x"):
        cors, refusal = judge(host, (b"origin", refused.encode()))
        assert cors is None and refusal is not None and "allowed_origins" in refusal, refused
    for name in ("localhost", "localhost:1", "LOCALHOST.", "127.0.0.1", "127.1.2.3:9", "[::1]:8"):
        assert judge((b"host", name.encode())) == (b"*", None), name
    assert judge((b"host", b"loop.internal:8222")) == (b"*", None)
    for name in ("evil.example:8222", "localhost.evil.example", "10.0.0.1", "[::1", ""):
        cors, refusal = judge((b"host", name.encode()))
        assert cors is None and refusal is not None and "allowed_hosts" in refusal, name
    # A unix socket's requests: no browser reaches one, its Host is made up.
    assert judge((b"host", b"evil.example"), over_tcp=False) == (b"*", None)
    # A rebinding page is its own origin, but its Host gives it away first.
    cors, refusal = judge((b"host", b"evil.example:8222"), (b"origin", b"http://evil.example:8222"))
    assert refusal is not None and "DNS rebinding" in refusal


def test_the_host_rule_applies_to_loopback_binds_only(tmp_path: Path) -> None:
    assert origin_policy(make_config(tmp_path, addr="127.0.0.1:0")).check_host
    assert origin_policy(make_config(tmp_path, addr="[::1]:0")).check_host
    assert origin_policy(make_config(tmp_path, addr="localhost:0")).check_host
    exposed = make_config(tmp_path, addr="0.0.0.0:8222", token="t")
    assert not origin_policy(exposed).check_host


# -- settings ----------------------------------------------------------------------------------


def test_the_settings_come_from_flags_env_and_file(tmp_path: Path) -> None:
    file = tmp_path / "config.json"
    file.write_text(
        '{"allowed_origins": ["http://localhost:5173", "https://App.example"],'
        ' "allowed_hosts": ["Loop.Internal"]}'
    )
    config = load_config({}, {}, config_flag=str(file))
    assert config.allowed_origins == ("http://localhost:5173", "https://app.example")
    assert config.allowed_hosts == ("loop.internal",)
    env = {"LOOP_ALLOWED_ORIGINS": "http://a.example, http://b.example:81"}
    assert load_config({}, env, config_flag=str(file)).allowed_origins == (
        "http://a.example",
        "http://b.example:81",
    )
    flags = {"allowed_hosts": "x.example,y.example"}
    assert load_config(flags, env, config_flag=str(file)).allowed_hosts == (
        "x.example",
        "y.example",
    )


@pytest.mark.parametrize(
    ("source", "value", "message"),
    [
        ("env", "*", "invalid LOOP_ALLOWED_ORIGINS: '*' is not an origin"),
        ("flag", "evil.example", "invalid --allowed-origins: 'evil.example' is not an origin"),
        ("file", 5, "invalid allowed_origins in"),
    ],
)
def test_a_bad_origin_setting_stops_the_start(
    tmp_path: Path, source: str, value: Any, message: str
) -> None:
    file = tmp_path / "config.json"
    file.write_text('{"allowed_origins": %s}' % (value if source == "file" else "[]"))
    env = {"LOOP_ALLOWED_ORIGINS": value} if source == "env" else {}
    flags = {"allowed_origins": value} if source == "flag" else {}
    with pytest.raises(ConfigError, match="^" + message.replace("*", r"\*")):
        load_config(flags, env, config_flag=str(file))


# -- REST --------------------------------------------------------------------------------------


async def test_a_foreign_origin_is_refused_on_every_kind_of_request(
    server: ServerHandle, http: httpx.AsyncClient
) -> None:
    channel_id = await create_channel(http, "target")
    message = f'{{"channel_id":"{channel_id}","content":"run rm -rf"}}'
    task = f'{{"channel_id":"{channel_id}","schedule":"1h","type":"interval","prompt":"x"}}'
    attempts = [
        # What fetch(..., {mode: "no-cors"}) and a form post send: no preflight.
        ("POST", "/api/messages", "text/plain", message),
        ("POST", "/api/tasks", "text/plain", task),
        ("POST", "/api/messages", "application/x-www-form-urlencoded", "a=" + message),
        ("POST", "/api/messages", "application/json", message),
        ("GET", "/api/channels", None, None),
        ("GET", f"/api/channels/{channel_id}/messages", None, None),
        ("GET", "/api/health", None, None),
        ("DELETE", "/api/tasks/1", None, None),
    ]
    with trio.fail_after(DEADLINE):
        for origin in (EVIL, "null", f"http://127.0.0.1:{server.port + 1}"):
            for method, path, kind, body in attempts:
                headers = {"Origin": origin, **({"Content-Type": kind} if kind else {})}
                response = await http.request(method, path, headers=headers, content=body)
                assert response.status_code == 403, (origin, method, path)
                assert response.text.startswith(f'forbidden: origin "{origin}" may not use')
                assert response.text.endswith("add it to allowed_origins if it should\n")
                assert response.headers["content-type"] == "text/plain; charset=utf-8"
                # Nothing a script of that page could read the answer with.
                assert "access-control-allow-origin" not in response.headers
        await nothing_was_created(http, channel_id)


async def test_a_body_over_the_limit_from_a_foreign_origin_is_refused_the_same(
    server: ServerHandle,
) -> None:
    head = (
        f"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {EVIL}\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {2 << 20}\r\n\r\n"
    ).encode()
    status, headers, body = await raw_request(server.port, head, [b"x" * 65536] * 32)
    assert status == 403
    assert body.startswith(b"forbidden: origin")
    assert "access-control-allow-origin" not in headers


async def test_clients_without_origin_are_unaffected(
    server: ServerHandle, http: httpx.AsyncClient
) -> None:
    channel_id = await create_channel(http, "scripted")
    with trio.fail_after(DEADLINE):
        posted = await http.post(
            "/api/messages", json={"channel_id": channel_id, "content": "hello"}
        )
        assert posted.status_code == 204, posted.text
        assert posted.headers["access-control-allow-origin"] == "*"
        history = await http.get(f"/api/channels/{channel_id}/messages")
        assert [m["content"] for m in history.json()["messages"] if not m["is_bot"]] == ["hello"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_servers_own_origin_is_allowed_and_echoed(
    server: ServerHandle, http: httpx.AsyncClient, host: str
) -> None:
    origin = f"http://{host}:{server.port}"
    headers = {"Origin": origin, "Host": f"{host}:{server.port}"}
    channel_id = await create_channel(http, "console")
    with trio.fail_after(DEADLINE):
        response = await http.post(
            "/api/messages",
            json={"channel_id": channel_id, "content": "from the console"},
            headers=headers,
        )
        assert response.status_code == 204, response.text
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["vary"] == "Origin"
        missing = await http.get("/api/tasks/999", headers=headers)  # an error answer too
        assert missing.status_code == 404
        assert missing.headers["access-control-allow-origin"] == origin


async def test_a_configured_origin_is_allowed_and_echoed(start_server: StartServer) -> None:
    dev = "http://localhost:5173"
    server = await start_server(allowed_origins=(dev,))
    async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as http:
        with trio.fail_after(DEADLINE):
            response = await http.get("/api/channels", headers={"Origin": dev})
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == dev
            other = await http.get("/api/channels", headers={"Origin": "http://localhost:5174"})
            assert other.status_code == 403


async def test_an_allowed_origin_still_needs_the_token(start_server: StartServer) -> None:
    server = await start_server(token="t0ken")
    async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as http:
        response = await http.get("/api/channels", headers={"Origin": own_origin(server)})
        assert response.status_code == 401
        assert response.headers["access-control-allow-origin"] == own_origin(server)
        refused = await http.get("/api/channels", headers={"Origin": EVIL})
        assert refused.status_code == 403  # the origin first: no hint about the token


async def test_preflights_answer_cors_only_for_allowed_origins(
    server: ServerHandle, http: httpx.AsyncClient
) -> None:
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    with trio.fail_after(DEADLINE):
        for path in ("/api/messages", "/api/ws", "/api/ws/terminal"):
            refused = await http.options(path, headers={"Origin": EVIL, **ask})
            assert refused.status_code == 403, path
            assert not [h for h in refused.headers if h.startswith("access-control-")], path
            mine = await http.options(path, headers={"Origin": own_origin(server), **ask})
            assert mine.status_code == 204, path
            assert mine.headers["access-control-allow-origin"] == own_origin(server)
            assert "POST" in mine.headers["access-control-allow-methods"]
            assert "Authorization" in mine.headers["access-control-allow-headers"]
            anyone = await http.options(path)
            assert anyone.status_code == 204
            assert anyone.headers["access-control-allow-origin"] == "*"
    assert dict(ANY_ORIGIN)[b"access-control-allow-origin"] == b"*"


async def test_a_rebinding_host_is_refused(
    server: ServerHandle, http: httpx.AsyncClient, start_server: StartServer
) -> None:
    channel_id = await create_channel(http, "target")
    message = {"channel_id": channel_id, "content": "x"}
    with trio.fail_after(DEADLINE):
        for host in (f"evil.example:{server.port}", "evil.example", "192.0.2.1"):
            headers = {"Host": host}
            for response in (
                await http.get("/api/health", headers=headers),
                await http.post("/api/messages", json=message, headers=headers),
                # Its own origin, as the page of a rebound name would send.
                await http.post(
                    "/api/messages", json=message, headers={**headers, "Origin": f"http://{host}"}
                ),
            ):
                assert response.status_code == 403, host
                assert response.text.startswith(f'forbidden: host "{host}" is not this server')
                assert "access-control-allow-origin" not in response.headers
        await nothing_was_created(http, channel_id)
        for host in (f"localhost:{server.port}", f"[::1]:{server.port}", "127.0.0.2"):
            assert (await http.get("/api/health", headers={"Host": host})).status_code == 200
    named = await start_server(allowed_hosts=("loop.internal",))
    async with httpx.AsyncClient(base_url=named.url, timeout=DEADLINE) as other:
        assert (
            await other.get("/api/health", headers={"Host": "loop.internal"})
        ).status_code == 200


# -- WebSockets: the listener's fast path and hypercorn's fallback -------------------------------


@pytest.mark.parametrize("reuse", [False, True], ids=PATHS)
@pytest.mark.parametrize("path", WS_PATHS)
async def test_a_websocket_upgrade_from_a_foreign_origin_is_refused(
    server: ServerHandle, path: str, reuse: bool
) -> None:
    with trio.fail_after(DEADLINE):
        for origin in (EVIL, "null", f"http://localhost:{server.port + 1}"):
            client, body = await open_upgrade(
                server.port, path, f"Origin: {origin}\r\n", reuse=reuse
            )
            async with client:
                assert client.status == 403, (origin, client.head)
                assert body.startswith(f'forbidden: origin "{origin}" may not use'.encode())
                assert b"access-control-allow-origin" not in client.head.lower()
    assert server.services.terminals.statistics().sessions == 0


@pytest.mark.parametrize("reuse", [False, True], ids=PATHS)
@pytest.mark.parametrize("path", WS_PATHS)
async def test_a_websocket_upgrade_with_a_rebinding_host_is_refused(
    server: ServerHandle, path: str, reuse: bool
) -> None:
    with trio.fail_after(DEADLINE):
        host = f"evil.example:{server.port}"
        client, body = await open_upgrade(
            server.port, path, f"Origin: http://{host}\r\n", reuse=reuse, host=host
        )
        async with client:
            assert client.status == 403, client.head
            assert body.startswith(f'forbidden: host "{host}"'.encode())


@pytest.mark.parametrize("reuse", [False, True], ids=PATHS)
@pytest.mark.parametrize("path", WS_PATHS)
async def test_websocket_upgrades_without_origin_or_from_allowed_ones_open(
    start_server: StartServer, path: str, reuse: bool
) -> None:
    dev = "http://localhost:5173"
    server = await start_server(allowed_origins=(dev,))
    mine = own_origin(server)
    with trio.fail_after(DEADLINE):
        for headers in ("", f"Origin: {mine}\r\n", f"Origin: {dev}\r\n"):
            client, _ = await open_upgrade(
                server.port, path, headers, reuse=reuse, host=f"127.0.0.1:{server.port}"
            )
            async with client:
                assert client.status == 101, (headers, client.head)


@pytest.mark.parametrize("reuse", [False, True], ids=PATHS)
async def test_websocket_refusals_of_allowed_origins_echo_them(
    start_server: StartServer, reuse: bool
) -> None:
    server = await start_server(token="t0ken")
    mine = own_origin(server)
    with trio.fail_after(DEADLINE):
        client, body = await open_upgrade(
            server.port,
            "/api/ws",
            f"Origin: {mine}\r\n",
            reuse=reuse,
            host=f"127.0.0.1:{server.port}",
        )
        async with client:
            assert client.status == 401
            assert body == b"unauthorized\n"
            assert f"access-control-allow-origin: {mine}".encode() in client.head.lower()


# -- the unix socket: no Host rule ---------------------------------------------------------------


async def test_requests_on_a_unix_socket_are_not_held_to_the_host_rule(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """``serve()`` on a TCP loopback socket and a unix socket at once, with the gateway in
    front: the same rebinding-style Host is refused over TCP and served over the unix socket
    (the MCP bridge's way in; its Host is whatever its HTTP client puts there)."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    path = str(tmp_path / "api.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(path)
    port = tcp.getsockname()[1]
    policy = OriginPolicy()
    app = Gateway(make_app(), token="", max_body_bytes=1 << 20, policy=policy)
    stop = trio.Event()
    await nursery.start(
        partial(
            serve,
            app,
            hypercorn_config(),
            [tcp, unix],
            EventsEndpoint(None, allow_all),
            shutdown_trigger=stop.wait,
            policy=policy,
        )
    )
    evil = {"Host": "evil.example"}
    try:
        with trio.fail_after(DEADLINE):
            async with httpx.AsyncClient(timeout=DEADLINE) as http:
                refused = await http.get(f"http://127.0.0.1:{port}/hello", headers=evil)
                assert refused.status_code == 403
            transport = httpx.AsyncHTTPTransport(uds=path)
            async with httpx.AsyncClient(transport=transport, timeout=DEADLINE) as http:
                served = await http.get("http://localhost/hello", headers=evil)
                assert served.status_code == 200 and served.text == "hello"
                # The events socket's own handshake on the unix socket: the listener's path.
                events = await http.get("http://evil.example/api/ws")
                assert events.status_code == 501  # no hub here: past the policy
                foreign = await http.get("http://localhost/hello", headers={"Origin": EVIL})
                assert foreign.status_code == 403  # the Origin rule holds everywhere
    finally:
        stop.set()


def test_verdicts_are_remembered_per_origin_and_host_and_stay_right_past_the_bound() -> None:
    policy = OriginPolicy(allowed_origins=["https://app.example"])
    page = [(b"Host", b"127.0.0.1:8222"), (b"Origin", b"https://app.example")]
    first = policy.judge(page)
    assert first.refusal is None
    assert policy.judge(page) is first  # kept, not worked out again
    # Many distinct hosts (more than are kept): each still gets its own right verdict.
    for n in range(600):
        rebinding = policy.judge([(b"host", f"evil{n}.example".encode())])
        assert rebinding.refusal is not None and f"evil{n}.example" in rebinding.refusal
        assert policy.judge([(b"host", f"127.0.0.{n % 250 + 1}".encode())]).refusal is None
    assert policy.judge(page).refusal is None
    assert policy.judge(page, over_tcp=False).refusal is None
    other = [(b"Host", b"127.0.0.1:8222"), (b"Origin", b"https://other.example")]
    assert policy.judge(other).refusal is not None
