"""Interactive processes in running containers: ``docker exec`` with a TTY, as Trio streams.

The SDK's ``exec_start(socket=True)`` hands back the hijacked HTTP connection wrapped in its own
objects; we take our own duplicate of the file descriptor (as ``DockerEngine.attach_stream``
does) so the terminal manager reads and writes the raw socket from Trio, and we rescue any
output the SDK's buffered reader already pulled in behind the ``101`` answer, which would be
lost otherwise.

Docker has no "kill exec" call, and closing the connection leaves the process running (a shell
keeps waiting on its terminal). ``TtyExec.kill`` therefore signals the processes itself: the
host pid ``exec_inspect`` reports, once ``/proc`` confirms it belongs to the container, and
every process of its terminal session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Sequence
from typing import Any

import docker.errors
import trio

from loop_server.containers._engine import DockerEngine, EngineError
from loop_server.containers._ownership import our_container

# How long ``kill`` waits for Docker to know the pid of a process it has just started.
_PID_POLLS = 100
_PID_POLL_INTERVAL = 0.02


def _explain(err: Exception) -> str:
    """Docker's own sentence ("No such container: x") rather than the SDK's URL-laden text."""
    explanation = getattr(err, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", errors="replace")
    return str(explanation or err).strip()


def adopt_sdk_socket(raw: Any) -> tuple[socket.socket, bytes]:
    """Our own non-blocking duplicate of the SDK's hijacked connection, and the bytes the
    SDK's buffered reader had already taken off the socket.

    Blocking (it closes the SDK's objects): call it in a worker thread.
    """
    stdlib: socket.socket = getattr(raw, "_sock", raw)
    stdlib.setblocking(False)  # shared by the duplicate: Trio wants non-blocking anyway
    response = getattr(raw, "_response", None)
    buffered = b""
    reader = getattr(getattr(getattr(response, "raw", None), "_fp", None), "fp", None)
    if reader is not None:
        # ``read1`` returns what is buffered, or what one non-blocking recv gives (b"" when
        # nothing is there yet): either way, bytes nobody else will ever see.
        with contextlib.suppress(OSError, ValueError):
            buffered = reader.read1(1 << 16) or b""
    duplicate = stdlib.dup()
    # Release the SDK's side: its HTTP response first (it owns the file object), then the
    # socket wrapper and the socket itself. Our duplicate stays open.
    if response is not None:
        with contextlib.suppress(OSError, ValueError):
            response.close()
    with contextlib.suppress(OSError, ValueError):
        raw.close()
    stdlib.close()
    return duplicate, buffered


class TtyExec:
    """One running ``docker exec`` with a TTY."""

    def __init__(
        self,
        engine: DockerEngine,
        container_id: str,
        exec_id: str,
        stream: trio.SocketStream,
        initial_output: bytes,
    ) -> None:
        self._engine = engine
        self.container_id = container_id
        self.exec_id = exec_id
        #: The TTY: what the process writes comes out here; input goes in here.
        self.stream = stream
        #: Output that arrived with the exec's HTTP answer, before ``stream`` existed.
        self.initial_output = initial_output

    async def resize(self, rows: int, cols: int) -> None:
        client = await self._engine.client()
        try:
            await self._engine.call(client.api.exec_resize, self.exec_id, height=rows, width=cols)
        except docker.errors.DockerException as err:
            raise EngineError(_explain(err)) from err

    async def kill(self) -> bool:
        """SIGKILL every process of the exec's terminal session: the shell, its foreground
        job and its background jobs, as a hang-up would end them. True when they are known
        to be gone."""
        client = await self._engine.client()
        # Right after the start, Docker reports the exec running with no pid yet.
        for _ in range(_PID_POLLS):
            try:
                info = await self._engine.call(client.api.exec_inspect, self.exec_id)
            except docker.errors.NotFound:
                return True  # the container is gone, and the processes with it
            except docker.errors.DockerException as err:
                raise EngineError(f"inspecting exec: {_explain(err)}") from err
            if not info.get("Running"):
                return True
            pid = info.get("Pid")
            if isinstance(pid, int) and pid > 0:
                break
            await trio.sleep(_PID_POLL_INTERVAL)
        else:
            return False
        outcome = await trio.to_thread.run_sync(signal_exec_session, pid, self.container_id)
        if isinstance(outcome, bool):
            return outcome
        # Not allowed to signal them from here (a docker-group user, the processes are
        # root's): let the container kill its own processes, by their pids there.
        try:
            killer = await self._engine.call(
                client.api.exec_create,
                self.container_id,
                ["kill", "-KILL", *(str(p) for p in outcome)],
            )
            await self._engine.call(client.api.exec_start, killer["Id"], detach=True)
        except docker.errors.DockerException as err:
            raise EngineError(f"killing exec: {_explain(err)}") from err
        return True


def signal_exec_session(leader: int, container_id: str) -> bool | list[int]:
    """SIGKILL host pid ``leader`` and every process of its session, if ``leader`` belongs to
    ``container_id``.

    Returns True when done, False when ``leader`` cannot be verified as the container's
    (another pid namespace, a remote engine: nothing is then guessed at, nothing signalled),
    or the in-container pids of the processes this process may not signal. Blocking: reads
    ``/proc``.
    """
    try:
        with open(f"/proc/{leader}/cgroup", encoding="utf-8") as cgroup:
            if container_id not in cgroup.read():
                return False
    except FileNotFoundError:
        return True  # exited meanwhile
    except OSError:
        return False
    denied: list[int] = []
    for pid in [leader, *_session_members(leader)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        except PermissionError:
            inner = _pid_in_container(pid)
            if inner is not None:
                denied.append(inner)
    return denied or True


def _session_members(session: int) -> list[int]:
    """Host pids of the processes whose session id is ``session`` (the leader excluded)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == session:
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        # After "pid (comm)": state, ppid, pgrp, session.
        if len(fields) > 3 and fields[3] == str(session):
            members.append(int(entry))
    return members


def _pid_in_container(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("NSpid:"):
                    # Outermost namespace first; the container's is the last one.
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None


class DockerExec:
    """Starts interactive processes in containers (the terminal manager's ``TtyLauncher``)."""

    def __init__(self, engine: DockerEngine) -> None:
        self._engine = engine

    async def start(self, container_id: str, cmd: Sequence[str]) -> TtyExec:
        """``docker exec -it <container> <cmd>``. Errors are ``EngineError`` with a text for
        users (``creating exec: No such container: x``, ``docker engine not reachable: ...``).
        Only in a container loop-server created (``NotOurContainer`` otherwise)."""
        client = await self._engine.client()
        try:
            # The exec goes to the id checked here, not to a name that could be re-pointed.
            checked = (await our_container(self._engine, container_id)).id
            created = await self._engine.call(
                client.api.exec_create,
                checked,
                list(cmd),
                stdin=True,
                stdout=True,
                stderr=True,
                tty=True,
            )
        except docker.errors.DockerException as err:
            raise EngineError(f"creating exec: {_explain(err)}") from err
        exec_id = str(created["Id"])

        def start_and_adopt() -> tuple[socket.socket, bytes]:
            raw = client.api.exec_start(exec_id, tty=True, socket=True)
            return adopt_sdk_socket(raw)

        try:
            sock, initial = await self._engine.call(start_and_adopt)
        except docker.errors.DockerException as err:
            raise EngineError(f"starting exec: {_explain(err)}") from err
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        return TtyExec(self._engine, container_id, exec_id, stream, initial)
