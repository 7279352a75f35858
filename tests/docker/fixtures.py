"""Fixtures for tests that need a real Docker engine, registered once for the whole suite
(``pytest_plugins`` in ``tests/conftest.py``): a test asks for ``docker_client``,
``loop_test_image`` or ``docker_containers`` by name, nothing is imported per module, and the
collection hook there marks every such test ``docker``.

``scripts/docker-env.sh`` (run by ``make test``) starts an engine where it can and imports the
``loop-test:latest`` image: a busybox root filesystem whose ``/usr/local/bin/claude`` is the
agent stub in ``tests/docker/image/claude-stub``. Without an engine (or image) these fixtures
skip with a loud reason, or fail when ``LOOP_REQUIRE_DOCKER=1``.

Every container a test makes through ``docker_containers`` runs with ``--network none`` and is
labelled ``loop-test=1`` plus a per-test ``loop-test.run=<id>``; the fixture force-removes them
afterwards (only this test's, so parallel runs on one engine do not disturb each other).
"""

from __future__ import annotations

import gc
import os
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import pytest
import requests
from docker.models.containers import Container
from docker.models.images import Image

TEST_IMAGE = os.environ.get("LOOP_TEST_IMAGE", "loop-test:latest")
STUB = "/usr/local/bin/claude"
TEST_LABEL = "loop-test"
RUN_LABEL = "loop-test.run"
CLIENT_TIMEOUT = 15  # seconds, for every API call (and each read of a log stream)

_HOW_TO = (
    "run `scripts/docker-env.sh` as root to install and start one "
    "(log: /tmp/loop-dockerd.log); set LOOP_REQUIRE_DOCKER=1 to make this a failure"
)


def docker_required() -> bool:
    return os.environ.get("LOOP_REQUIRE_DOCKER") == "1"


def docker_unavailable(reason: str) -> None:
    """Skip loudly — or fail, when LOOP_REQUIRE_DOCKER=1."""
    if docker_required():
        pytest.fail(f"DOCKER REQUIRED (LOOP_REQUIRE_DOCKER=1) but {reason}", pytrace=False)
    pytest.skip(f"!!! DOCKER TESTS SKIPPED: {reason} — {_HOW_TO}")


def connect() -> tuple[docker.DockerClient | None, str]:
    """A client that has answered a ping, or (None, why not)."""
    # A failed connection leaves the SDK's unix socket unclosed (it never closes it after a
    # failed connect()); its ResourceWarning would turn into an error under
    # filterwarnings=error. Let it be collected here, where that warning is ignored.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        client = None
        try:
            client = docker.from_env(timeout=CLIENT_TIMEOUT)
            client.ping()
            return client, ""
        except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
            reason = f"no Docker engine answers ({exc})"
        if client is not None:
            client.close()
        client = None
        gc.collect()
    return None, reason


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client for the local engine; skips (or fails) when none answers."""
    client, reason = connect()
    if client is None:
        docker_unavailable(reason)
        raise AssertionError("unreachable")  # docker_unavailable always raises
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def loop_test_image(docker_client: docker.DockerClient) -> Image:
    """The imported test image; skips (or fails) when it is missing."""
    try:
        return docker_client.images.get(TEST_IMAGE)
    except docker.errors.ImageNotFound:
        docker_unavailable(f"the image {TEST_IMAGE} is missing")
        raise AssertionError("unreachable") from None  # docker_unavailable always raises


@dataclass(frozen=True)
class Finished:
    """A container that ran to its end."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


class Containers:
    """Makes labelled, network-less test containers and removes them afterwards."""

    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.client = client
        self.image = image
        self.run_id = uuid.uuid4().hex[:12]
        self.labels = {TEST_LABEL: "1", RUN_LABEL: self.run_id}
        self._extra_filters: list[str] = []

    def start(self, command: Sequence[str], **kwargs: Any) -> Container:
        """Start a detached container running ``command`` (a list: no shell in between)."""
        labels = {**self.labels, **kwargs.pop("labels", {})}
        kwargs.setdefault("network_mode", "none")
        return self.client.containers.run(
            self.image, list(command), detach=True, labels=labels, **kwargs
        )

    def run(self, command: Sequence[str], *, timeout: float = 60, **kwargs: Any) -> Finished:
        """Run ``command`` to its end; its exit code and its stdout/stderr, decoded."""
        container = self.start(command, **kwargs)
        status = container.wait(timeout=timeout)
        out = container.logs(stdout=True, stderr=False)
        err = container.logs(stdout=False, stderr=True)
        return Finished(int(status["StatusCode"]), out.decode(), err.decode())

    def stub(self, *args: str, **kwargs: Any) -> Finished:
        """Run the claude stub with ``args`` (the prompt last, as the runner passes it)."""
        return self.run([STUB, *args], **kwargs)

    def also_remove(self, label: str) -> None:
        """Also remove, at the end of the test, containers carrying ``label`` ("k=v" or "k")."""
        self._extra_filters.append(label)

    def remove_all(self) -> list[str]:
        removed = []
        for label in [f"{RUN_LABEL}={self.run_id}", *self._extra_filters]:
            for container in self.client.containers.list(all=True, filters={"label": label}):
                try:
                    container.remove(force=True)
                except docker.errors.NotFound:
                    continue  # removed meanwhile (auto-remove, another cleanup)
                removed.append(container.id)
        return removed


@pytest.fixture
def docker_containers(
    docker_client: docker.DockerClient, loop_test_image: Image
) -> Iterator[Containers]:
    """A factory for test containers; every one of them is force-removed after the test."""
    containers = Containers(docker_client, TEST_IMAGE)
    try:
        yield containers
    finally:
        containers.remove_all()


def stub_args(prompt: str, *extra: str, mcp_config: str = "/tmp/mcp-ch_test.json") -> list[str]:
    """The claude command line of an agent run (SPEC A.5), without the binary."""
    return [
        "--mcp-config",
        mcp_config,
        "--print",
        "--verbose",
        "--output-format",
        "stream-json",
        "--dangerously-skip-permissions",
        *extra,
        prompt,
    ]
