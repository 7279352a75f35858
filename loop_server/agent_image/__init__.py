"""The agent image: the real Claude Code CLI, bash, git, ripgrep and this project, built by
``loop-server image build`` from one of two recipes in ``agent-image/`` (a Dockerfile, or
offline from Debian packages and the npm package)."""

from loop_server.agent_image._cli import add_image_command, image_main
from loop_server.agent_image._recipe import CLAUDE_CODE_VERSION, RECIPE_DIR, Recipe, RecipeError
from loop_server.agent_image._status import (
    BUILD_COMMAND,
    ImageStatus,
    build_command,
    from_labels,
    missing,
    unknown,
)

__all__ = [
    "BUILD_COMMAND",
    "CLAUDE_CODE_VERSION",
    "RECIPE_DIR",
    "ImageStatus",
    "Recipe",
    "RecipeError",
    "add_image_command",
    "build_command",
    "from_labels",
    "image_main",
    "missing",
    "unknown",
]
