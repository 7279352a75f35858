"""Private PostgreSQL and Redis servers for the scale-out tests, on loopback, started and stopped
by PID.

Each server lives in its own temporary directory, listens on 127.0.0.1 on a free port, and is
stopped (and its directory removed) when the test session ends. Nothing system-wide is touched:
the programs come from Debian's packages (``scripts/services-env.sh`` installs them), the
servers are ours. PostgreSQL refuses to run as root, so as root it runs as the ``postgres``
user the package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 60.0


class ServiceUnavailable(Exception):
    """The program is not installed (or cannot run here): the caller skips or fails."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise ServiceUnavailable(
            "PostgreSQL is not installed (bash scripts/services-env.sh installs it)"
        )
    return Path(found[-1]).parent


def _as_postgres_user() -> list[str]:
    # initdb and postgres refuse root; the package's `postgres` user runs them then.
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise ServiceUnavailable("running as root, but runuser is missing to drop to postgres")
    return ["runuser", "-u", "postgres", "--"]


def _wait_for_port(port: int, process: subprocess.Popen[bytes] | None, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT} s")


@dataclass
class PostgresServer:
    """One cluster; ``create_database()`` gives each test its own empty database."""

    port: int
    root: Path
    bin_dir: Path
    _counter: int = 0

    @classmethod
    def start(cls) -> PostgresServer:
        bin_dir = _postgres_bin()
        prefix = _as_postgres_user()
        root = Path(tempfile.mkdtemp(prefix="loop-pg-"))
        if prefix:
            shutil.chown(root, user="postgres")
        data = root / "data"
        port = free_port()
        try:
            subprocess.run(
                [
                    *prefix,
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale",
                    "C",
                ],
                check=True,
                capture_output=True,
            )
            # fsync off: the test cluster is thrown away, and durability against loss of the
            # machine is PostgreSQL's to prove, not ours; a loop-server SIGKILLed mid-write
            # still loses nothing acknowledged (its COMMIT returned before the ack).
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
                " -c max_connections=300 -c full_page_writes=off"
            )
            subprocess.run(
                [
                    *prefix,
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(root / "server.log"),
                    "-w",
                    "-t",
                    str(int(START_TIMEOUT)),
                    "start",
                ],
                check=True,
                capture_output=True,
            )
        except subprocess.CalledProcessError as err:
            log = (
                (root / "server.log").read_text(errors="replace")
                if (root / "server.log").exists()
                else ""
            )
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(
                f"starting PostgreSQL failed: {err.stderr.decode(errors='replace')}\n{log}"
            ) from err
        _wait_for_port(port, None, "PostgreSQL")
        return cls(port=port, root=root, bin_dir=bin_dir)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _client(self, program: str, *args: str) -> None:
        subprocess.run(
            [
                str(self.bin_dir / program),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                *args,
            ],
            check=True,
            capture_output=True,
        )

    def create_database(self) -> str:
        self._counter += 1
        name = f"loop_test_{os.getpid()}_{self._counter}"
        self._client("createdb", name)
        return name

    def drop_database(self, name: str) -> None:
        # --force: a server under test that was killed may leave sessions the backend still holds.
        with contextlib.suppress(subprocess.CalledProcessError):
            self._client("dropdb", "--force", "--if-exists", name)

    def stop(self) -> None:
        subprocess.run(
            [
                *_as_postgres_user(),
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class RedisServer:
    """One redis-server, in-memory only (no RDB, no AOF); ``restart()`` for outage tests."""

    port: int
    root: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(cls) -> RedisServer:
        if shutil.which("redis-server") is None:
            raise ServiceUnavailable(
                "redis-server is not installed (bash scripts/services-env.sh installs it)"
            )
        server = cls(port=free_port(), root=Path(tempfile.mkdtemp(prefix="loop-redis-")))
        server._launch()
        return server

    def _launch(self) -> None:
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        _wait_for_port(self.port, self.process, "redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *parts: str) -> bytes:
        """Send one command (RESP) and return the raw first reply line: enough for FLUSHALL."""
        payload = f"*{len(parts)}\r\n".encode() + b"".join(
            f"${len(p.encode())}\r\n{p}\r\n".encode() for p in parts
        )
        with socket.create_connection(("127.0.0.1", self.port), 5) as sock:
            sock.sendall(payload)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.strip()

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), as a lost Redis looks to its clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        """Kill and start again on the same port: an outage, with every key lost."""
        self.kill()
        self._launch()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
