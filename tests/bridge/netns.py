"""A loopback-only network for containers that must reach a test server: the namespace of a
``--network none`` holder container, which agent containers join (``container:<id>``).

The test process cannot bind inside that namespace itself, so a helper process does it under
``nsenter`` and hands the listening socket back over a unix socket (SCM_RIGHTS). A socket keeps
the namespace it was made in, so the test serves on it with Trio as on any other socket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile

_LISTEN = (
    "import socket, sys\n"
    "server = socket.socket()\n"
    "server.bind(('127.0.0.1', 0))\n"
    "server.listen(64)\n"
    "back = socket.socket(socket.AF_UNIX)\n"
    "back.connect(sys.argv[1])\n"
    "socket.send_fds(back, [b'x'], [server.fileno()])\n"
)


def listen_in_namespace(pid: int) -> socket.socket:
    """A TCP socket listening on 127.0.0.1 (a free port) in process ``pid``'s network
    namespace. Needs root (``nsenter``)."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "fd.sock")
        with socket.socket(socket.AF_UNIX) as receiver:
            receiver.bind(path)
            receiver.listen(1)
            subprocess.run(
                ["nsenter", "-t", str(pid), "-n", sys.executable, "-c", _LISTEN, path],
                check=True,
                timeout=60,
            )
            receiver.settimeout(10)
            connection, _ = receiver.accept()
            with connection:
                _, fds, _, _ = socket.recv_fds(connection, 16, 1)
    return socket.socket(fileno=fds[0])
