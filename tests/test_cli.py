"""The ``loop-server`` command as a user runs it: a real process, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from tests.conftest import create_channel
from tests.hardening._process import CLI, serve_args, serve_process, server_env

LOOP_SERVER = [sys.executable, "-m", "loop_server"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOP_")}
    env["HOME"] = str(tmp_path / "home")
    return env


async def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(30):
        return await trio.run_process(
            LOOP_SERVER + args,
            env=_env(tmp_path),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )


async def test_version(tmp_path: Path) -> None:
    result = await _run(["--version"], tmp_path)
    assert result.returncode == 0
    assert result.stdout.decode().strip() == "loop-server 0.1.0"


async def test_no_command_prints_usage(tmp_path: Path) -> None:
    result = await _run([], tmp_path)
    assert result.returncode == 2
    assert b"serve" in result.stderr


async def test_refuses_public_bind_without_token(tmp_path: Path) -> None:
    result = await _run(["serve", "--addr", "0.0.0.0:0", "--data-dir", str(tmp_path)], tmp_path)
    assert result.returncode == 2
    assert b"refusing to listen on 0.0.0.0" in result.stderr


async def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await _run(
            ["serve", "--addr", f"127.0.0.1:{port}", "--data-dir", str(tmp_path)], tmp_path
        )
    assert result.returncode == 1
    assert f"listening on 127.0.0.1:{port}: Address already in use".encode() in result.stderr
    assert b"Traceback" not in result.stderr


async def test_unusable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    result = await _run(
        ["serve", "--addr", "127.0.0.1:0", "--data-dir", str(blocker / "data")], tmp_path
    )
    assert result.returncode == 1
    assert f"data dir {blocker / 'data'} is not usable".encode() in result.stderr
    assert b"Traceback" not in result.stderr


async def test_serves_until_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with serve_process(
        [*CLI, *serve_args(data_dir)], server_env(tmp_path), startup_timeout=20
    ) as server:
        with trio.fail_after(20):
            async with httpx.AsyncClient(base_url=server.url) as http:
                health = await http.get("/api/health")
                channel = await create_channel(http, "c")
                posted = await http.post(
                    "/api/messages", json={"channel_id": channel, "content": "x"}
                )
            assert health.json()["status"] == "ok"
            assert posted.status_code == 204
            server.send_signal(signal.SIGTERM)
            assert await server.wait() == 0
    assert (data_dir / "loop.db").exists()
