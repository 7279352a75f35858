"""The docker SDK, used from Trio: every blocking call runs in a worker thread under a limiter
we chose (so a burst of container operations cannot exhaust Trio's default thread pool), and the
client is created lazily so the server starts without an engine (SPEC A.1)."""

from __future__ import annotations

import socket
import traceback
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import docker
import docker.errors
import trio

T = TypeVar("T")

#: After a failed connect, callers within this many seconds get the same error at once: with no
#: engine, every stored message's run and every channel listing would otherwise pay a thread
#: hop and a refused connect (most of a request's CPU here) to learn the same thing.
RECONNECT_AFTER_SEC = 1.0


def _clear_tracebacks(err: BaseException) -> None:
    """Drop the local variables of every frame in ``err``'s traceback and in those of its
    causes and contexts (frames still running, such as the caller's, are left alone)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [err]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        pending += [current.__cause__, current.__context__]


class EngineError(Exception):
    """A Docker operation failed; the text is meant for users (bot messages, WS errors)."""


class DockerEngine:
    def __init__(
        self, *, base_url: str | None = None, max_concurrent_calls: int = 16, timeout: int = 60
    ) -> None:
        self._base_url = base_url  # None: the environment's (DOCKER_HOST or the local socket)
        self._limiter = trio.CapacityLimiter(max_concurrent_calls)
        self._timeout = timeout
        self._client: docker.DockerClient | None = None
        # Single flight: concurrent first callers must not each create (and leak) a client.
        self._connecting = trio.Lock()
        # Bumped as each call() ends: lets a cache of container state (RunningChannels) know
        # that this server itself may have changed something since it last listed.
        self.calls_finished = 0
        self._unreachable: tuple[float, str] | None = None  # (when, why) of the last failure

    async def client(self) -> docker.DockerClient:
        if self._client is not None:
            return self._client
        self._raise_if_recently_unreachable()
        async with self._connecting:
            return await self._connect()

    def _raise_if_recently_unreachable(self) -> None:
        if self._unreachable is not None:
            failed_at, why = self._unreachable
            if trio.current_time() - failed_at < RECONNECT_AFTER_SEC:
                raise EngineError(why)

    async def _connect(self) -> docker.DockerClient:
        if self._client is not None:  # another caller connected while we waited
            return self._client
        self._raise_if_recently_unreachable()  # a caller ahead of us just failed
        try:
            client = await trio.to_thread.run_sync(self._open_client, limiter=self._limiter)
        except EngineError as err:
            self._unreachable = (trio.current_time(), str(err))
            raise
        self._unreachable = None
        self._client = client
        return client

    def _open_client(self) -> docker.DockerClient:
        # The SDK leaves the socket of a failed connect (in its constructor's version check or
        # in ping) unclosed, and the exception's traceback keeps it alive. Let it all go here,
        # its ResourceWarning silenced, not at some random later point: clearing the frames of
        # the tracebacks drops the last references. (A full gc.collect() did the same at a cost
        # that grows with the heap: half the server's CPU when every stored message's run
        # failed to reach the engine, benchmarks/events_user_path.py.)
        failure = ""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            client: docker.DockerClient | None = None
            try:
                if self._base_url is None:
                    client = docker.from_env(timeout=self._timeout)
                else:
                    client = docker.DockerClient(base_url=self._base_url, timeout=self._timeout)
                client.ping()
            except Exception as err:
                failure = str(err) or type(err).__name__
                _clear_tracebacks(err)
                if client is not None:
                    client.close()
                client = None
        if client is None:
            raise EngineError(f"docker engine not reachable: {failure}")
        return client

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking SDK call in a thread. Docker's own errors pass through, so callers
        can tell "image not found" from "engine gone"."""
        try:
            return await trio.to_thread.run_sync(
                partial(fn, *args, **kwargs), limiter=self._limiter
            )
        except docker.errors.DockerException:
            raise
        except (OSError, ConnectionError) as err:
            raise EngineError(f"docker engine not reachable: {err}") from err
        finally:
            self.calls_finished += 1

    async def attach_stream(self, container_id: str, params: dict[str, Any]) -> trio.SocketStream:
        """The container's raw attach socket as a Trio stream (our own duplicate of the fd, so
        the SDK's wrapper can be dropped without closing it under us)."""
        client = await self.client()
        raw = await self.call(client.api.attach_socket, container_id, params)
        stdlib: socket.socket = getattr(raw, "_sock", raw)
        duplicate = stdlib.dup()
        duplicate.setblocking(False)
        # Release the SDK's side: its HTTP response first (it owns the file object), then
        # the socket wrapper and the socket itself. Our duplicate stays open.
        response = getattr(raw, "_response", None)
        if response is not None:
            response.close()
        raw.close()
        stdlib.close()
        return trio.SocketStream(trio.socket.from_stdlib_socket(duplicate))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
