"""One agent run in a fresh container (SPEC A.5 steps 5–6).

The container's output is read through the raw attach socket as a Trio stream, so the run is a
plain Trio task: cancelling it (stop, shutdown, timeout) stops reading at once, and the
container is force-removed in a shielded ``finally`` whatever happened.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker.errors
import trio

from loop_server.agent._command import SessionChoice, claude_command
from loop_server.agent._stream import ApiRetry, LineSplitter, RunResult, StreamEvent, parse_line
from loop_server.agent_image import missing as missing_image
from loop_server.containers import (
    STDOUT,
    ContainerSettings,
    DockerEngine,
    EngineError,
    ImageChecker,
    StreamDemux,
    issue_token,
    prepare_mounts,
    revoke_token,
)
from loop_server.streams import RECEIVE_SIZE

log = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 2000


class AgentError(Exception):
    """A run failed; the text is what the user sees in the bot message and ``agent.status``."""


class SessionNotFound(AgentError):
    """Claude could not resume the session it was given: its transcript is not in Claude's
    state dir (wiped, moved, another ``claude_config_dir``, or a fork run from another work
    dir). The orchestrator then starts a new session instead."""


# What Claude Code prints (to stderr, exiting 1) for ``--resume`` of an unknown session.
SESSION_NOT_FOUND = "No conversation found with session ID"

# API errors the CLI retries (10 times, for about three minutes) although no retry can help:
# the key or token is refused. The run fails at the first one, with the API's reason, instead
# of leaving the user waiting for a generic failure minutes later.
HOPELESS_STATUSES = {401: "the API key or token was refused", 403: "access was denied"}

OnEvent = Callable[[StreamEvent], None]


def api_failure(retry: ApiRetry) -> str | None:
    """The error text when ``retry`` cannot succeed, else None (worth waiting for)."""
    why = HOPELESS_STATUSES.get(retry.status)
    if why is None:
        return None
    name = f" {retry.error}" if retry.error else ""
    return (
        f"Claude API error {retry.status}{name}: {why} "
        "(check anthropic_api_key / claude_code_oauth_token, or the container_env settings)"
    )


@dataclass(frozen=True, slots=True)
class RunRequest:
    channel_id: str
    work_dir: str
    prompt: str
    session: SessionChoice
    system_prompt: str = ""  # appended to the configured one, for this run only


@dataclass(frozen=True, slots=True)
class RunOutcome:
    text: str
    session_id: str
    result: RunResult | None = None


@dataclass(frozen=True, slots=True)
class AgentSettings:
    claude_bin: str
    timeout: float
    model: str = ""
    system_prompt: str = ""


class AgentRunner:
    def __init__(
        self,
        engine: DockerEngine,
        containers: ContainerSettings,
        settings: AgentSettings,
        *,
        image: ImageChecker | None = None,
    ) -> None:
        self._engine = engine
        self._containers = containers
        self._settings = settings
        self._image = image

    async def run(self, request: RunRequest, on_event: OnEvent) -> RunOutcome:
        """Run Claude for ``request``; ``on_event`` sees every stream event as it arrives."""
        if self._image is not None:
            # Logs (once) when the image went missing or stale; a missing one fails below.
            await self._image.refresh()
        try:
            # The engine first: without one, the dirs would be prepared for nothing.
            client = await self._engine.client()
            await prepare_mounts(self._containers, request.channel_id, request.work_dir)
        except EngineError as err:
            raise AgentError(str(err)) from err
        argv = claude_command(
            self._settings.claude_bin,
            work_dir=request.work_dir,
            channel_id=request.channel_id,
            session=request.session,
            model=self._settings.model,
            system_prompt="\n".join(
                part for part in (self._settings.system_prompt, request.system_prompt) if part
            ),
        )
        try:
            token = await issue_token(self._containers, request.channel_id)
        except EngineError as err:
            raise AgentError(str(err)) from err
        # The token dies with the container (or with the attempt to make one).
        try:
            kwargs = self._containers.create_kwargs(
                request.channel_id, request.work_dir, token=token
            )
            # The prompt goes to stdin: open, and closed once it is written (StdinOnce, which
            # the SDK sets only for a container that is not detached; we attach ourselves).
            kwargs.update(stdin_open=True, detach=False)
            try:
                container = await self._engine.call(
                    client.containers.create, command=argv, **kwargs
                )
            except docker.errors.ImageNotFound as err:
                raise AgentError(missing_image(self._containers.image).message) from err
            except (docker.errors.DockerException, EngineError) as err:
                raise AgentError(f"creating agent container: {err}") from err
            try:
                return await self._follow(container, request.prompt, on_event)
            finally:
                with trio.CancelScope(shield=True):
                    await self._remove(container)
        finally:
            with trio.CancelScope(shield=True):
                await revoke_token(self._containers, token.token_id if token else "")

    async def _follow(self, container: Any, prompt: str, on_event: OnEvent) -> RunOutcome:
        container_id: str = container.id
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1, "logs": 1}
        try:
            stream = await self._engine.attach_stream(container_id, params)
        except (docker.errors.DockerException, EngineError) as err:
            raise AgentError(f"attaching to agent container: {err}") from err
        demux, lines = StreamDemux(), LineSplitter()
        stderr_tail: collections.deque[bytes] = collections.deque(maxlen=64)
        result: RunResult | None = None

        def handle(line: bytes) -> None:
            nonlocal result
            for event in parse_line(line):
                if isinstance(event, RunResult):
                    result = event
                elif isinstance(event, ApiRetry) and (failure := api_failure(event)):
                    raise AgentError(failure)
                on_event(event)

        async with stream:
            try:
                await self._engine.call(container.start)
            except docker.errors.DockerException as err:
                raise AgentError(f"starting agent container: {err}") from err
            await _send_prompt(stream, prompt)
            with trio.move_on_after(self._settings.timeout) as timer:
                while data := await stream.receive_some(RECEIVE_SIZE):
                    for kind, payload in demux.feed(data):
                        if kind == STDOUT:
                            for line in lines.feed(payload):
                                handle(line)
                        else:
                            stderr_tail.append(payload)
                for line in lines.flush():
                    handle(line)
            if timer.cancelled_caught:
                raise AgentError(f"agent timed out after {self._settings.timeout:g}s")
        try:
            status = await self._engine.call(container.wait, timeout=60)
        except Exception as err:
            raise AgentError(f"waiting for agent container: {err}") from err
        exit_code = status.get("StatusCode", -1)
        detail = _tail(stderr_tail)
        if result is not None and result.is_error:
            reason = result.error_text or "agent reported an error"
            # Claude Code 2.1 reports an unknown --resume session as an error result (and on
            # stderr, exit 1) without ever calling the model.
            if result.num_turns == 0 and SESSION_NOT_FOUND in reason:
                raise SessionNotFound(reason)
            raise AgentError(reason)
        if exit_code != 0:
            if result is None and SESSION_NOT_FOUND in detail:
                raise SessionNotFound(f"agent exited with code {exit_code}{detail}")
            raise AgentError(f"agent exited with code {exit_code}{detail}")
        if result is None:
            raise AgentError(f"agent finished without a result{detail}")
        return RunOutcome(result.text, result.session_id, result)

    async def _remove(self, container: Any) -> None:
        try:
            await self._engine.call(container.remove, force=True)
        except docker.errors.NotFound:
            pass
        except Exception as err:
            log.warning("removing agent container failed: %s", err)


async def _send_prompt(stream: trio.SocketStream, prompt: str) -> None:
    """Write the prompt to the container's stdin and close it (half-close: the output keeps
    coming). A container that already exited leaves a broken pipe: its output says why."""
    try:
        await stream.send_all(prompt.encode("utf-8", errors="replace"))
        await stream.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


def _tail(chunks: collections.deque[bytes]) -> str:
    text = b"".join(chunks).decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    return ": " + text[-STDERR_TAIL_BYTES:]
