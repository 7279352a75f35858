"""Which containers are ours to touch from a client's request: only those loop-server made.

A terminal ``create`` may name any container id, and ``stop`` then removes the container. Left
unchecked, a client (or a web page that got through) could open a shell in, and then remove,
any container on the Docker host: a user's database included. So a terminal session opens, and
a removal asked for by a client happens, only in a container that carries the labels
loop-server puts on every container it creates (``app=loop-agent`` and ``loop-channel``).
"""

from __future__ import annotations

from collections.abc import Mapping

import docker
import docker.errors
from docker.models.containers import Container

from loop_server.containers._engine import DockerEngine, EngineError
from loop_server.containers._labels import APP_LABEL, APP_VALUE, CHANNEL_LABEL


class NotOurContainer(EngineError):
    """The container exists but loop-server did not create it."""


def made_by_loop(labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return labels.get(APP_LABEL) == APP_VALUE and bool(labels.get(CHANNEL_LABEL))


async def our_container(engine: DockerEngine, container_id: str) -> Container:
    """The container ``container_id`` (an id, a prefix of one, or a name) when loop-server
    created it. Raises ``docker.errors.NotFound`` when there is none, ``NotOurContainer`` when
    it is someone else's, ``EngineError`` when the engine cannot say."""
    client = await engine.client()
    try:
        container: Container = await engine.call(client.containers.get, container_id)
    except docker.errors.NotFound:
        raise
    except docker.errors.DockerException as err:
        raise EngineError(f"inspecting container: {err}") from err
    if not made_by_loop(container.labels):
        raise NotOurContainer(
            f"container {container_id} was not created by loop-server (it lacks the "
            f"{APP_LABEL}={APP_VALUE} and {CHANNEL_LABEL} labels): terminals open only in "
            "loop-server's own channel containers, and only those are removed"
        )
    return container
