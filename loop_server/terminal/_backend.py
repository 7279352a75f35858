"""What the session manager needs from the container engine: no I/O here, only the seam.

``containers.DockerExec`` is the real launcher; tests of the manager's own logic use one made
of in-memory streams, so history, viewers, reaping and shutdown are tested without Docker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import trio


class TtyProcess(Protocol):
    """A process running on a pseudo-terminal in a container."""

    @property
    def stream(self) -> trio.abc.Stream:
        """Output comes out of it, input goes into it. End of stream: the process is gone."""
        ...

    @property
    def initial_output(self) -> bytes:
        """Output that arrived before ``stream`` was handed over (delivered first)."""
        ...

    async def resize(self, rows: int, cols: int) -> None:
        """Set the terminal size; raises with a text for users."""
        ...

    async def kill(self) -> bool:
        """End the process (closing ``stream`` does not); True when it is known gone."""
        ...


class TtyLauncher(Protocol):
    async def start(self, container_id: str, cmd: Sequence[str]) -> TtyProcess:
        """Start ``cmd`` on a new TTY in the container; raises with a text for users."""
        ...
