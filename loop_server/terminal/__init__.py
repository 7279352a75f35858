"""Terminals into containers (SPEC §5–6): sessions on a docker exec TTY, shared by any number
of viewers, and the ``/api/ws/terminal`` conversation above the WebSocket layer.

The listener (``loop_server.serving``) moves the frames; see docs/terminal.md.
"""

from loop_server.terminal._backend import TtyLauncher, TtyProcess
from loop_server.terminal._connection import (
    MAX_OUTPUT_FRAME,
    ChannelGetter,
    TerminalConnection,
    TerminalServices,
    TerminalSink,
)
from loop_server.terminal._interactive import InteractiveCommands
from loop_server.terminal._manager import (
    DEFAULT_COMMAND,
    SessionManager,
    TerminalError,
    TerminalStatistics,
)
from loop_server.terminal._ring import RingBuffer
from loop_server.terminal._viewer import Viewer

__all__ = [
    "DEFAULT_COMMAND",
    "MAX_OUTPUT_FRAME",
    "ChannelGetter",
    "InteractiveCommands",
    "RingBuffer",
    "SessionManager",
    "TerminalConnection",
    "TerminalError",
    "TerminalServices",
    "TerminalSink",
    "TerminalStatistics",
    "TtyLauncher",
    "TtyProcess",
    "Viewer",
]
