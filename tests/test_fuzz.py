"""Property-based fuzzing of the REST API from its own OpenAPI document (issue 8).

schemathesis generates requests for every operation of ``/api/openapi.json`` — valid, invalid
and stateful sequences — against a real server process on loopback, for a bounded time. Every
answer must be one the document declares, with its declared content type and schema, and never
a 5xx; afterwards the server still answers. Agent runs fail fast here (no Docker engine is
reachable for this server), so the fuzzer exercises the API, not containers.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import trio

FUZZ_SECONDS = int(os.environ.get("LOOP_FUZZ_SECONDS", "45"))
SEED = "20261124"


async def test_generated_requests_get_declared_answers(tmp_path: Path) -> None:
    server_cwd, fuzzer_cwd = tmp_path / "server-cwd", tmp_path / "fuzzer-cwd"
    server_cwd.mkdir()
    fuzzer_cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOP_")}
    env.update(
        HOME=str(tmp_path / "home"),
        DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock",
        LOOP_CONTAINER_IMAGE="loop-missing:none",
    )
    server = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "loop_server",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert server.stderr is not None
    try:
        with trio.fail_after(20):
            log = b""
            while (match := re.search(rb"api server started addr=(\S+)", log)) is None:
                chunk = await server.stderr.receive_some(4096)
                assert chunk, log
                log += chunk
        url = match.group(1).decode()
        schemathesis = Path(sys.executable).with_name("schemathesis")
        with trio.fail_after(FUZZ_SECONDS + 120):
            fuzz = await trio.run_process(
                [
                    str(schemathesis),
                    "run",
                    f"{url}/api/openapi.json",
                    "--checks",
                    "not_a_server_error,status_code_conformance,"
                    "content_type_conformance,response_schema_conformance",
                    "--max-time",
                    str(FUZZ_SECONDS),
                    "--seed",
                    SEED,
                    "--request-timeout",
                    "20",
                    "--warnings",
                    "off",
                    "--no-color",
                ],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                cwd=tmp_path,
                env=env,
            )
        report = fuzz.stdout.decode(errors="replace")[-6000:]
        assert fuzz.returncode == 0, report
        assert re.search(r"\d+ generated", report), report
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/api/health")).status_code == 200
        server.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await server.wait() == 0
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
    # Nothing the fuzzer sent may make the server write relative to where it runs.
    assert list(await trio.Path(server_cwd).iterdir()) == []
