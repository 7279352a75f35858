"""Binding the agent socket: a unix socket in a directory of its own (docs/mcp.md)."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

# sockaddr_un's sun_path holds 108 bytes, the terminating NUL included.
MAX_PATH_BYTES = 107


class SocketPathError(Exception):
    """The socket cannot be bound; the text says why."""


def bind_unix_socket(path: Path) -> socket.socket:
    """A bound, non-blocking unix socket at ``path`` that anyone who can reach it may connect
    to (mode 0666: agents run as whichever user owns their work dir; every request on it must
    carry a token). A socket file left behind by a server that is gone is replaced; one that
    still answers is another server's, and is an error."""
    encoded = os.fsencode(path)
    if len(encoded) > MAX_PATH_BYTES:
        raise SocketPathError(
            f"socket path {path} is {len(encoded)} bytes long, more than a unix socket allows "
            f"({MAX_PATH_BYTES}); set api_socket (LOOP_API_SOCKET) to a shorter path"
        )
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        _remove_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(encoded)
            os.chmod(path, 0o666)
        except OSError:
            sock.close()
            raise
    except OSError as err:
        raise SocketPathError(f"binding socket {path}: {err.strerror or err}") from err
    sock.setblocking(False)
    return sock


def _remove_stale(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketPathError(f"socket path {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fsencode(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody listens: left behind by a server that is gone
        return
    finally:
        probe.close()
    raise SocketPathError(f"another server is listening on {path}")


def remove_socket_file(path: Path) -> None:
    """Remove the socket's file once the server no longer listens on it."""
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            path.unlink()
