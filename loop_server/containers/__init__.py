"""Docker behind Trio: the engine wrapper, output demultiplexing, channel containers and
interactive (TTY) execs."""

from loop_server.containers._channel import (
    ChannelContainers,
    ContainerSettings,
    issue_token,
    prepare_mounts,
    revoke_token,
)
from loop_server.containers._demux import STDOUT, StreamDemux
from loop_server.containers._engine import DockerEngine, EngineError
from loop_server.containers._environment import (
    ContainerEnvError,
    host_user_env,
    parse_container_env,
)
from loop_server.containers._exec import DockerExec, TtyExec
from loop_server.containers._image_check import ImageChecker
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
    "STDOUT",
    "ChannelContainers",
    "ContainerEnvError",
    "ContainerSettings",
    "ContainerWatcher",
    "DockerEngine",
    "DockerExec",
    "EngineError",
    "ImageChecker",
    "RunningChannels",
    "RunningStatistics",
    "StreamDemux",
    "TtyExec",
    "host_user_env",
    "issue_token",
    "parse_container_env",
    "prepare_mounts",
    "revoke_token",
]
