"""The Dockerfile recipe: the same image built by Docker from registry images (debian,
python) for engines that reach a registry. ``agent-image/Dockerfile`` says what it does; this
prepares its build context and runs the build."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import docker
import docker.errors

from loop_server import __version__
from loop_server.agent_image._offline import Say
from loop_server.agent_image._recipe import PACKAGE_DIR, Recipe, RecipeError, package_files
from loop_server.agent_image._status import (
    BUILD_LABEL,
    CLAUDE_VERSION_LABEL,
    SERVER_VERSION_LABEL,
)


def build_with_dockerfile(
    client: docker.DockerClient, recipe: Recipe, image: str, *, say: Say, force: bool = False
) -> bool:
    build = recipe.build_hash()
    with tempfile.TemporaryDirectory(prefix="loop-agent-context-") as tmp:
        context = Path(tmp)
        for name in ("Dockerfile", "debian-packages.txt", "entrypoint.sh", "loop-server.sh"):
            shutil.copy2(recipe.recipe_dir / name, context / name)
        (context / "requirements.txt").write_text("\n".join(recipe.requirements) + "\n")
        for path in package_files():
            target = context / "app" / "loop_server" / path.relative_to(PACKAGE_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        say(f"docker build of {image} (Claude Code {recipe.claude_version})")
        try:
            _, output = client.images.build(
                path=str(context),
                tag=image,
                buildargs={"CLAUDE_CODE_VERSION": recipe.claude_version},
                labels={
                    BUILD_LABEL: build,
                    SERVER_VERSION_LABEL: __version__,
                    CLAUDE_VERSION_LABEL: recipe.claude_version,
                },
                nocache=force,
                rm=True,
                forcerm=True,
            )
        except docker.errors.BuildError as err:
            raise RecipeError(f"docker build failed: {err.msg}") from err
        except docker.errors.DockerException as err:
            raise RecipeError(f"docker build failed: {err}") from err
        for chunk in output:
            line = str(chunk.get("stream", "")).rstrip() if isinstance(chunk, dict) else ""
            if line.startswith("Step "):
                say(line)
    say(f"built {image} (build {build}, Claude Code {recipe.claude_version})")
    return True
