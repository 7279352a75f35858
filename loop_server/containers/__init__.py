"""Docker behind Trio: the engine wrapper, output demultiplexing, channel containers and
interactive (TTY) execs."""

from loop_server.containers._channel import ChannelContainers, ContainerSettings
from loop_server.containers._demux import StreamDemux
from loop_server.containers._engine import DockerEngine, EngineError
from loop_server.containers._exec import DockerExec, TtyExec
from loop_server.containers._labels import (
    APP_LABEL,
    APP_VALUE,
    CHANNEL_LABEL,
    ROLE_LABEL,
    SHELL_ROLE,
)
from loop_server.containers._running import RunningChannels, RunningStatistics
from loop_server.containers._watcher import ContainerWatcher

__all__ = [
    "APP_LABEL",
    "APP_VALUE",
    "CHANNEL_LABEL",
    "ROLE_LABEL",
    "SHELL_ROLE",
    "ChannelContainers",
    "ContainerSettings",
    "ContainerWatcher",
    "DockerEngine",
    "DockerExec",
    "EngineError",
    "RunningChannels",
    "RunningStatistics",
    "StreamDemux",
    "TtyExec",
]
