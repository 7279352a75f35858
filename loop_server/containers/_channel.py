"""Channel containers: which run, finding or creating a shell container, removing one
(SPEC §5.6: RunningChannelLister, ContainerFinder, ContainerStopper)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import docker.errors
import trio

from loop_server.access import AgentToken, AgentTokens
from loop_server.agent_image import missing as missing_image
from loop_server.channel_paths import fallback_work_dir
from loop_server.containers._engine import DockerEngine, EngineError
from loop_server.containers._labels import (
    CHANNEL_LABEL,
    ROLE_LABEL,
    SHELL_ROLE,
    TOKEN_LABEL,
    channel_labels,
)
from loop_server.containers._ownership import our_container
from loop_server.containers._workdir import (
    CONTAINER_SOCKET_DIR,
    CONTAINER_TOKEN_FILE,
    bridge_entry,
    prepare_claude_dir,
    prepare_work_dir,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ContainerSettings:
    """How every channel container (agent run or shell) is made."""

    image: str
    loop_dir: str
    network: str | None = None  # None: Docker's default; "none" in tests
    memory_mb: int = 0
    cpus: float = 0.0
    environment: dict[str, str] = field(default_factory=dict, repr=False)  # secrets
    # Claude's state dir, mounted at the same path with CLAUDE_CONFIG_DIR naming it ("" = none).
    claude_dir: str = ""
    # The agent socket (docs/mcp.md): its host dir is mounted at CONTAINER_SOCKET_DIR and the
    # MCP config names the bridge ("" = no socket, no bridge).
    socket_dir: str = ""
    socket_name: str = "api.sock"
    bridge_command: str = "loop-server"  # the bridge's executable inside the image
    # Where each container's scoped token comes from (None: no tokens).
    tokens: AgentTokens | None = field(default=None, compare=False)

    def work_dir(self, channel_id: str, dir_path: str) -> str:
        return dir_path or fallback_work_dir(self.loop_dir, channel_id)

    def create_kwargs(
        self,
        channel_id: str,
        work_dir: str,
        *,
        shell: bool = False,
        token: AgentToken | None = None,
    ) -> dict[str, object]:
        """``shell``: the ``sleep infinity`` container terminals open (labelled so that only
        those are reused by ``find_container_by_channel``). ``token``: the container's own
        (``issue_token``), mounted read-only where the bridge reads it."""
        labels = channel_labels(channel_id)
        if shell:
            labels[ROLE_LABEL] = SHELL_ROLE
        volumes = {work_dir: {"bind": work_dir, "mode": "rw"}}
        environment = dict(self.environment)
        if self.claude_dir:
            volumes[self.claude_dir] = {"bind": self.claude_dir, "mode": "rw"}
            environment["CLAUDE_CONFIG_DIR"] = self.claude_dir
        if self.socket_dir:
            volumes[self.socket_dir] = {"bind": CONTAINER_SOCKET_DIR, "mode": "rw"}
        if token is not None:
            volumes[token.path] = {"bind": CONTAINER_TOKEN_FILE, "mode": "ro"}
            labels[TOKEN_LABEL] = token.token_id
        kwargs: dict[str, object] = {
            "image": self.image,
            "labels": labels,
            "volumes": volumes,
            "working_dir": work_dir,
            "environment": environment,
            "detach": True,
        }
        if self.network:
            kwargs["network_mode"] = self.network
        if self.memory_mb > 0:
            kwargs["mem_limit"] = f"{self.memory_mb}m"
        if self.cpus > 0:
            kwargs["nano_cpus"] = int(self.cpus * 1e9)
        return kwargs


async def prepare_mounts(settings: ContainerSettings, channel_id: str, work_dir: str) -> None:
    """What every channel container (agent run or shell) needs on the host before it is made:
    an absolute work dir (never one relative to wherever the server runs), made by us rather
    than by Docker (as root), with the MCP config file ``claude --mcp-config`` names, and
    Claude's state dir. Failures raise ``EngineError`` with the reason."""
    if "\x00" in work_dir or not os.path.isabs(work_dir):
        raise EngineError(f"work dir {work_dir!r} is not an absolute path")
    bridge = None
    if settings.socket_dir:
        bridge = bridge_entry(settings.bridge_command, channel_id, settings.socket_name)
    # One worker thread for both dirs: each hop costs more than the file work here.
    await trio.to_thread.run_sync(_prepare_dirs, work_dir, channel_id, bridge, settings.claude_dir)


def _prepare_dirs(
    work_dir: str, channel_id: str, bridge: dict[str, object] | None, claude_dir: str
) -> None:
    try:
        prepare_work_dir(work_dir, channel_id, bridge)
    except OSError as err:  # e.g. the channel's dir_path names a file, or is not writable
        raise EngineError(f"preparing work dir {work_dir}: {err.strerror or err}") from err
    if claude_dir:
        try:
            prepare_claude_dir(claude_dir)
        except OSError as err:
            reason = err.strerror or err
            raise EngineError(f"preparing claude dir {claude_dir}: {reason}") from err


async def issue_token(settings: ContainerSettings, channel_id: str) -> AgentToken | None:
    """A scoped token for a new container of ``channel_id``. Revoke it with ``revoke_token``
    once the container is gone (or was never made)."""
    tokens = settings.tokens
    if tokens is None:
        return None
    try:
        return await trio.to_thread.run_sync(tokens.issue, channel_id)
    except OSError as err:
        raise EngineError(f"writing agent token: {err.strerror or err}") from err


async def revoke_token(settings: ContainerSettings, token_id: str) -> None:
    """Never raises: a token that cannot be deleted is logged (it is forgotten either way)."""
    if settings.tokens is None or not token_id:
        return
    try:
        await trio.to_thread.run_sync(settings.tokens.revoke, token_id)
    except OSError as err:
        log.warning("revoking agent token %s: %s", token_id, err.strerror or err)


def container_name(channel_id: str, dir_path: str) -> str:
    base = PurePosixPath(dir_path).name if dir_path else channel_id
    base = re.sub(r"[^a-z0-9]", "-", base.lower())[:40] or "channel"
    return f"loop-{base}-{secrets.token_hex(3)}"


class ChannelContainers:
    def __init__(self, engine: DockerEngine, settings: ContainerSettings) -> None:
        self._engine = engine
        self._settings = settings

    async def running_channel_ids(self) -> set[str]:
        client = await self._engine.client()
        containers = await self._engine.call(
            client.containers.list, filters={"label": CHANNEL_LABEL, "status": "running"}
        )
        return {c.labels.get(CHANNEL_LABEL, "") for c in containers} - {""}

    async def find_container_by_channel(self, channel_id: str, dir_path: str) -> str:
        """The channel's running shell container, made if there is none. Never an agent run's
        container (SPEC §5.6 infers upstream takes any): that one is removed when its run ends,
        taking the terminal with it, and a terminal's ``stop`` would kill the run."""
        client = await self._engine.client()
        try:
            found = await self._engine.call(
                client.containers.list,
                filters={
                    "label": [f"{CHANNEL_LABEL}={channel_id}", f"{ROLE_LABEL}={SHELL_ROLE}"],
                    "status": "running",
                },
            )
        except docker.errors.DockerException as err:
            raise EngineError(f"listing containers: {err}") from err
        if found:
            return str(found[0].id)
        work_dir = self._settings.work_dir(channel_id, dir_path)
        # As for an agent run (the claude command typed into the terminal names the channel's
        # MCP config file too).
        await prepare_mounts(self._settings, channel_id, work_dir)
        token = await issue_token(self._settings, channel_id)
        kwargs = self._settings.create_kwargs(channel_id, work_dir, shell=True, token=token)
        try:
            # create + start, not ``run``: ``run`` pulls a missing image, and a terminal request
            # must never make the engine reach out to a registry.
            container = await self._engine.call(
                client.containers.create,
                command=["sleep", "infinity"],
                name=container_name(channel_id, dir_path),
                **kwargs,
            )
        except BaseException as err:
            with trio.CancelScope(shield=True):
                await revoke_token(self._settings, token.token_id if token else "")
            if isinstance(err, docker.errors.ImageNotFound):
                raise EngineError(missing_image(self._settings.image).message) from err
            if isinstance(err, docker.errors.DockerException):
                raise EngineError(f"creating container: {err}") from err
            raise
        try:
            await self._engine.call(container.start)
        except docker.errors.DockerException as err:
            with trio.CancelScope(shield=True), contextlib.suppress(EngineError):
                await self.container_remove(str(container.id))
            raise EngineError(f"starting container: {err}") from err
        return str(container.id)

    async def prune_tokens(self) -> int:
        """Revoke the agent tokens of containers that are gone (removed while this server was
        not running, or behind its back); returns how many. Tokens issued meanwhile are kept:
        only those known before the engine was asked are candidates."""
        tokens = self._settings.tokens
        if tokens is None:
            return 0
        candidates = tokens.token_ids()
        client = await self._engine.client()
        # The list's own entries, not ``containers.list``: that inspects each container it
        # lists, and the engine lists a container being created (an agent run starting as the
        # server does) a moment before it can be inspected, so the prune failed with NotFound.
        listed = await self._engine.call(
            client.api.containers, all=True, filters={"label": TOKEN_LABEL}
        )
        held = {(entry.get("Labels") or {}).get(TOKEN_LABEL, "") for entry in listed}
        gone = candidates - held
        for token_id in gone:
            await revoke_token(self._settings, token_id)
        return len(gone)

    async def container_remove(self, container_id: str) -> None:
        """Remove a container loop-server created (``NotOurContainer`` for any other: a
        terminal's ``stop`` must never take a user's own container with it). Its agent token
        dies with it."""
        try:
            container = await our_container(self._engine, container_id)
            await self._engine.call(container.remove, force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.DockerException as err:
            raise EngineError(f"removing container: {err}") from err
        labels = container.labels or {}
        await revoke_token(self._settings, labels.get(TOKEN_LABEL, ""))
