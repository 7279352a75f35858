"""``loop-server serve`` prints the console's URL on stdout, with the token in the fragment
(never in a query string, never in the log). A real process on 127.0.0.1 port 0, ended by
SIGTERM; every wait under a deadline."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import trio

from loop_server.cli import console_url
from tests.hardening._process import CLI, serve_args, server_env


async def start_and_read(tmp_path: Path, *extra: str) -> tuple[str, str]:
    """The first line the server prints on stdout, and its whole log (stderr) after SIGTERM."""
    process = await trio.lowlevel.open_process(
        [*CLI, *serve_args(tmp_path / "data", *extra)],
        env=server_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    log = bytearray()
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:

                async def read_log() -> None:
                    assert process.stderr is not None
                    while chunk := await process.stderr.receive_some(65536):
                        log.extend(chunk)

                nursery.start_soon(read_log)
                out = bytearray()
                while b"\n" not in out:
                    chunk = await process.stdout.receive_some(4096)
                    assert chunk, f"no line on stdout; log:\n{log.decode()}"
                    out.extend(chunk)
                process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
        await trio.aclose_forcefully(process.stdout)
        await trio.aclose_forcefully(process.stderr)
    return out.decode().splitlines()[0], log.decode()


async def test_prints_the_console_url_with_the_token_in_the_fragment(tmp_path: Path) -> None:
    line, log = await start_and_read(tmp_path, "--token", "s3cret/+&=")
    match = re.fullmatch(r"loop-server: console at (http://127\.0\.0\.1:\d+)/#token=(\S+)", line)
    assert match, line
    assert match.group(2) == "s3cret%2F%2B%26%3D"  # percent-encoded: the fragment stays one value
    assert "s3cret" not in log
    assert f"addr={match.group(1)}" in log


async def test_without_a_token_the_url_has_no_fragment(tmp_path: Path) -> None:
    line, _ = await start_and_read(tmp_path)
    assert re.fullmatch(r"loop-server: console at http://127\.0\.0\.1:\d+/", line), line


def test_console_url() -> None:
    assert console_url("http://[::1]:8222", "") == "http://[::1]:8222/"
    assert console_url("http://127.0.0.1:1", "a b") == "http://127.0.0.1:1/#token=a%20b"
