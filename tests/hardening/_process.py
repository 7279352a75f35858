"""The server as a user runs it: a real ``loop-server serve`` process (the CLI or the
standalone binary), its log read as it comes, real signals.

Rules (as everywhere in tests/): loopback only (``--addr 127.0.0.1:0``; the bound port is read
from the log line ``api server started addr=...``), every wait under an absolute deadline, and
the process is always ended — by the test (a signal) or, failing that, by ``SIGKILL`` here.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import trio

#: The CLI exactly as ``loop-server`` runs it, with the project's interpreter.
CLI = (sys.executable, "-m", "loop_server")

_STARTED = re.compile(rb"api server started addr=(\S+)")


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any ``LOOP_*`` setting, a private ``HOME``, plus
    ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOP_")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    env.update(extra)
    return env


def unreachable_docker(tmp_path: Path) -> str:
    """A ``DOCKER_HOST`` nobody listens on: every agent run fails at once with
    ``docker engine not reachable``, whatever engine this machine has."""
    return f"unix://{tmp_path / 'no-docker.sock'}"


class ServerProcess:
    """A running ``serve`` process whose stderr is read into ``log`` as it comes (a full pipe
    would stall the server)."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.log = bytearray()
        self.url = ""
        self.port = 0
        self._changed = trio.Event()
        self._log_ended = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def log_text(self) -> str:
        return self.log.decode("utf-8", "replace")

    async def _read_log(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        try:
            while chunk := await stream.receive_some(65536):
                self.log += chunk
                self._wake()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self._log_ended = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_log(self, pattern: bytes) -> re.Match[bytes]:
        """The first match of ``pattern`` in the log, once it is there (the caller's deadline
        bounds the wait). Fails if the log ends without it."""
        regex = re.compile(pattern)
        while (match := regex.search(self.log)) is None:
            if self._log_ended:
                raise AssertionError(
                    f"the server's log ended without {pattern!r}:\n{self.log_text()}"
                )
            await self._changed.wait()
        return match

    def send_signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    async def wait(self) -> int:
        return await self.process.wait()


@asynccontextmanager
async def serve_process(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    startup_timeout: float = 30,
) -> AsyncIterator[ServerProcess]:
    """Start ``argv`` (a ``serve`` command line), wait for its "started" log line and yield it.
    On the way out a process still running is killed (the test ends it itself if it cares how)."""
    process = await trio.lowlevel.open_process(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = ServerProcess(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server._read_log)
            with trio.fail_after(startup_timeout):
                match = await server.wait_for_log(_STARTED.pattern)
            server.url = match.group(1).decode()
            server.port = int(server.url.rsplit(":", 1)[1])
            try:
                yield server
            finally:
                if process.returncode is None:
                    process.kill()
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    await process.wait()
    finally:
        if process.returncode is None:  # start-up failed or the reader was cancelled
            process.kill()
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                await process.wait()
        if process.stderr is not None:
            await trio.aclose_forcefully(process.stderr)


def serve_args(data_dir: Path, *extra: str) -> list[str]:
    return ["serve", "--addr", "127.0.0.1:0", "--data-dir", str(data_dir), *extra]
