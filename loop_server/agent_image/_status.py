"""Is the agent image there and current? One answer for start-up, runs and ``/api/health``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loop_server import __version__

BUILD_COMMAND = "loop-server image build"

# Labels every image built by `loop-server image build` carries.
BUILD_LABEL = "loop.agent.build"  # hash of the recipe, the CLI pin and the package's files
SERVER_VERSION_LABEL = "loop.server.version"
CLAUDE_VERSION_LABEL = "loop.claude-code.version"


@dataclass(frozen=True, slots=True)
class ImageStatus:
    image: str
    state: str  # "ok", "missing", "stale", "unmanaged" (not built by us), "unknown"
    message: str
    claude_version: str = ""

    @property
    def usable(self) -> bool:
        return self.state in {"ok", "stale", "unmanaged"}

    def as_health(self) -> dict[str, str]:
        details = {"image": self.image, "state": self.state, "message": self.message}
        if self.claude_version:
            details["claude_code_version"] = self.claude_version
        return details


def build_command(image: str) -> str:
    if image == "loop-agent:latest":
        return BUILD_COMMAND
    return f"{BUILD_COMMAND} --image {image}"


def missing(image: str) -> ImageStatus:
    return ImageStatus(
        image,
        "missing",
        f"agent image {image} not found; build it with: {build_command(image)}",
    )


def unknown(image: str, reason: str) -> ImageStatus:
    return ImageStatus(image, "unknown", f"agent image {image} not checked: {reason}")


def from_labels(
    image: str, labels: dict[str, Any] | None, *, expected_build: str = ""
) -> ImageStatus:
    """The status of an image that exists, from its labels. ``expected_build``: the build hash
    of this checkout's recipe and sources ("" when the recipe is not at hand)."""
    labels = labels or {}
    if BUILD_LABEL not in labels:
        return ImageStatus(
            image,
            "unmanaged",
            f"agent image {image} was not built by `{BUILD_COMMAND}` (no {BUILD_LABEL} label); "
            "it is used as it is",
        )
    built_for = str(labels.get(SERVER_VERSION_LABEL, ""))
    claude = str(labels.get(CLAUDE_VERSION_LABEL, ""))
    if built_for != __version__:
        return ImageStatus(
            image,
            "stale",
            f"agent image {image} was built for loop-server {built_for or '?'}, this is "
            f"{__version__}; rebuild it with: {build_command(image)}",
            claude,
        )
    if expected_build and labels.get(BUILD_LABEL) != expected_build:
        return ImageStatus(
            image,
            "stale",
            f"agent image {image} was built from other sources or another recipe; rebuild it "
            f"with: {build_command(image)}",
            claude,
        )
    return ImageStatus(image, "ok", f"agent image {image} (Claude Code {claude})", claude)
