"""The agent image: the real Claude Code CLI, bash, git, ripgrep and this project, built by
``loop-server image build`` from one of two recipes in ``agent-image/`` (a Dockerfile, or
offline from Debian packages and the npm package)."""

from loop_server.agent_image._recipe import CLAUDE_CODE_VERSION, Recipe, RecipeError
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
    "ImageStatus",
    "Recipe",
    "RecipeError",
    "build_command",
    "from_labels",
    "missing",
    "unknown",
]
