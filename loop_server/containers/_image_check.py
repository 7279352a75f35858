"""The server's view of its agent image: checked at start-up and before each run, shown in
``/api/health``; a missing or stale image is logged with the command that builds it."""

from __future__ import annotations

import logging

import docker.errors
import trio

from loop_server.agent_image import (
    RECIPE_DIR,
    ImageStatus,
    Recipe,
    RecipeError,
    from_labels,
    missing,
    unknown,
)
from loop_server.containers._engine import DockerEngine, EngineError

log = logging.getLogger("loop_server.agent_image._check")  # the name its lines have always had


def expected_build_hash() -> str:
    """This checkout's build hash, or "" when the recipe is not at hand (an installed copy):
    then only the versions on the image's labels are compared."""
    if not RECIPE_DIR.is_dir():
        return ""
    try:
        return Recipe.load().build_hash()
    except (RecipeError, OSError):
        return ""


class ImageChecker:
    def __init__(self, engine: DockerEngine, image: str) -> None:
        self._engine = engine
        self._image = image
        self._expected: str | None = None
        self.status = unknown(image, "not checked yet")

    async def refresh(self) -> ImageStatus:
        if self._expected is None:
            self._expected = await trio.to_thread.run_sync(expected_build_hash)
        try:
            client = await self._engine.client()
            found = await self._engine.call(client.images.get, self._image)
            status = from_labels(self._image, found.labels, expected_build=self._expected)
        except docker.errors.ImageNotFound:
            status = missing(self._image)
        except (docker.errors.DockerException, EngineError) as err:
            status = unknown(self._image, str(err))
        if status.state != self.status.state and status.state in {"missing", "stale"}:
            log.warning("%s", status.message)
        elif status.state != self.status.state:
            log.info("%s", status.message)
        self.status = status
        return status
