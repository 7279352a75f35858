"""The standalone executable (``make binary``, SPEC A.1): it serves without the project's
virtualenv.

Which executable: ``LOOP_BINARY`` (a path; ``make binary-smoke`` sets it after building, and
then a missing file is a failure), else ``dist/loop-server`` when it is newer than every source
file it is built from. Otherwise the test skips: ``make test`` runs ``make binary-smoke``, which
builds the executable when it is missing or stale and runs this module against it.

The process runs with a bare environment (no virtualenv, no ``PYTHONPATH``) from an empty
directory, so nothing can be imported from the checkout. Rules as in ``_process.py``.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from loop_server.runtime import ServerHandle
from tests.bridge.conftest import agent_token, bridge, ok
from tests.conftest import create_channel
from tests.events.events_helpers import connect_ws
from tests.hardening._process import serve_args, serve_process, unreachable_docker

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BINARY = ROOT / "dist" / "loop-server"


def _newest_source() -> float:
    sources = [*ROOT.joinpath("loop_server").rglob("*.py"), ROOT / "README.md"]
    sources += ROOT.joinpath("packaging").glob("*")
    return max(path.stat().st_mtime for path in sources)


def find_binary() -> Path:
    given = os.environ.get("LOOP_BINARY")
    if given:
        path = Path(given).resolve()
        if not path.is_file():
            pytest.fail(f"LOOP_BINARY={given} is not a file", pytrace=False)
        return path
    if not DEFAULT_BINARY.is_file():
        pytest.skip("no dist/loop-server: `make binary-smoke` builds it and runs this test")
    if DEFAULT_BINARY.stat().st_mtime < _newest_source():
        pytest.skip("dist/loop-server is older than the sources: run `make binary-smoke`")
    return DEFAULT_BINARY


@pytest.fixture
def binary() -> Path:
    return find_binary()


def bare_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **extra}


async def test_version(binary: Path, tmp_path: Path) -> None:
    with trio.fail_after(60):
        result = await trio.run_process(
            [str(binary), "--version"],
            env=bare_env(tmp_path),
            cwd=tmp_path,
            capture_stdout=True,
            capture_stderr=True,
        )
    assert result.stdout.decode().strip() == "loop-server 0.1.0"


async def test_serves_readme_events_and_stops_on_sigterm(binary: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = bare_env(tmp_path, DOCKER_HOST=unreachable_docker(tmp_path), LOOP_GRACEFUL_TIMEOUT="5")
    readme = (ROOT / "README.md").read_text("utf-8")
    # A one-file executable unpacks itself on every start: allow for a slow disk.
    async with serve_process([str(binary), *serve_args(data_dir)], env, cwd=tmp_path) as server:
        with trio.fail_after(60):
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                health = await http.get("/api/health")
                assert health.status_code == 200
                assert health.json()["status"] == "ok"
                got = await http.get("/api/readme")
                assert got.status_code == 200
                assert got.text == readme
                # The web console's built files are in the bundle too.
                page = await http.get("/")
                assert page.status_code == 200 and '<div id="app"' in page.text
                built = ROOT / "loop_server" / "console_static" / "console" / "app.js"
                script = await http.get("/console/app.js")
                assert script.content == built.read_bytes()

                channel = await create_channel(http, "c1")
                async with connect_ws(server.port, f"/api/ws?channels={channel}") as ws:
                    # SQLite, the events fast path and the docker SDK, all from the bundle:
                    # the message is stored and broadcast, and its agent run fails cleanly.
                    posted = await http.post(
                        "/api/messages", json={"channel_id": channel, "content": "hi"}
                    )
                    assert posted.status_code == 204
                    created = json.loads(await ws.get_message())
                    assert created["type"] == "message.created"
                    assert created["data"]["content"] == "hi"
                    status: dict[str, Any] = {"status": "running"}
                    while status["status"] == "running":
                        event = json.loads(await ws.get_message())
                        if event["type"] == "agent.status":
                            status = event["data"]
                    assert status["status"] == "error"
                    assert "docker engine not reachable" in status["error"]
                    history = await http.get(f"/api/channels/{channel}/messages")
                    contents = [m["content"] for m in history.json()["messages"]]
                    assert "hi" in contents

                    search = await http.post(
                        "/api/memory/search", json={"query": "notes", "dir_path": str(tmp_path)}
                    )
                    assert search.status_code == 200, search.text

                    server.send_signal(signal.SIGTERM)
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.get_message()
                    assert closed.value.reason is not None
                    assert closed.value.reason.code == 1001
            assert await server.wait() == 0, server.log_text()
    assert (data_dir / "loop.db").is_file()
    assert "Traceback" not in server.log_text()


async def test_the_binary_scales_out_on_postgres_and_redis(
    binary: Path, tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    # psycopg's C implementation (with its libpq) and coredis come from the bundle too.
    env = bare_env(
        tmp_path,
        DOCKER_HOST=unreachable_docker(tmp_path),
        LOOP_DATABASE_URL=postgres_url,
        LOOP_REDIS_URL=redis_url,
        LOOP_INSTANCE_ID="bundle-1",
    )
    data_dir = tmp_path / "data"
    async with serve_process([str(binary), *serve_args(data_dir)], env, cwd=tmp_path) as server:
        with trio.fail_after(60):
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                channel = await create_channel(http, "scaled")
                async with connect_ws(server.port, f"/api/ws?channels={channel}") as ws:
                    posted = await http.post(
                        "/api/messages", json={"channel_id": channel, "content": "via redis"}
                    )
                    assert posted.status_code == 204
                    # Global events (the channel's creation, containers) may come first.
                    created = json.loads(await ws.get_message())
                    while created["type"] != "message.created":
                        created = json.loads(await ws.get_message())
                    assert created["data"]["content"] == "via redis"
                    assert created["seq"] >= 1
                server.send_signal(signal.SIGTERM)
            assert await server.wait() == 0, server.log_text()
    assert not (data_dir / "loop.db").exists()  # the state is in PostgreSQL
    assert "Traceback" not in server.log_text()


async def test_the_binary_runs_the_mcp_bridge(
    binary: Path, server: ServerHandle, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # `loop-server mcp` from the bundle (the SDK and httpx inside it), over the agent socket.
    channel_id = await create_channel(client, "binary")
    token = agent_token(server, channel_id)
    async with bridge(
        channel_id,
        "--socket",
        str(server.config.socket_path),
        "--token-file",
        token.path,
        log_dir=tmp_path,
        env=bare_env(tmp_path),
        command=str(binary),
    ) as session:
        assert len((await session.list_tools()).tools) == 14
        assert await ok(session, "list_tasks") == "No scheduled tasks."
