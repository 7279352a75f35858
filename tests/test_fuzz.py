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
import sys
from pathlib import Path

import httpx
import trio

from tests.hardening._process import CLI, serve_args, serve_process, server_env

FUZZ_SECONDS = int(os.environ.get("LOOP_FUZZ_SECONDS", "45"))
SEED = "20261124"


async def test_generated_requests_get_declared_answers(tmp_path: Path) -> None:
    server_cwd, fuzzer_cwd = tmp_path / "server-cwd", tmp_path / "fuzzer-cwd"
    server_cwd.mkdir()
    fuzzer_cwd.mkdir()
    env = server_env(
        tmp_path,
        DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock",
        LOOP_CONTAINER_IMAGE="loop-missing:none",
    )
    async with serve_process(
        [*CLI, *serve_args(tmp_path / "data")], env, cwd=server_cwd, startup_timeout=20
    ) as server:
        schemathesis = Path(sys.executable).with_name("schemathesis")
        with trio.fail_after(FUZZ_SECONDS + 120):
            fuzz = await trio.run_process(
                [
                    str(schemathesis),
                    "run",
                    f"{server.url}/api/openapi.json",
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
                cwd=fuzzer_cwd,
                env=env,
            )
        report = fuzz.stdout.decode(errors="replace")[-6000:]
        assert fuzz.returncode == 0, report
        assert re.search(r"\d+ generated", report), report
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/api/health")).status_code == 200
        server.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await server.wait() == 0
    # Nothing the fuzzer sent may make the server write relative to where it runs.
    assert list(await trio.Path(server_cwd).iterdir()) == []
