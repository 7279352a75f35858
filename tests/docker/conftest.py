"""The Docker fixtures live in ``tests/docker/fixtures.py`` and are registered once for the
whole suite by ``tests/conftest.py``. The names stay importable from here for modules that
still do ``from tests.docker.conftest import ...`` (importing a fixture registers it for that
module again: harmless, the same fixture)."""

from tests.docker.fixtures import (
    STUB,
    TEST_IMAGE,
    Containers,
    Finished,
    docker_client,
    docker_containers,
    docker_required,
    docker_unavailable,
    loop_test_image,
    stub_args,
)

__all__ = [
    "STUB",
    "TEST_IMAGE",
    "Containers",
    "Finished",
    "docker_client",
    "docker_containers",
    "docker_required",
    "docker_unavailable",
    "loop_test_image",
    "stub_args",
]
