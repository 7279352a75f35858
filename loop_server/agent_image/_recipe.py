"""What goes into the agent image, and the hashes that say when to rebuild it.

The image is built in three layers, each cached under a tag that names the hash of what went in:
the Debian root file system (``loop-agent-debian:<hash>``), the Claude Code CLI and the Python
dependencies on top (``loop-agent-base:<hash>``), and this project's own package (the image
the server runs, labelled with ``loop.agent.build``). A code change rebuilds only the last one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path

import loop_server
from loop_server import __version__

# The Claude Code CLI the image carries (npm @anthropic-ai/claude-code). Upgrade with
# `loop-server image build --claude-version X.Y.Z`, or change the pin here.
CLAUDE_CODE_VERSION = "2.1.332"
DEBIAN_SUITE = "bookworm"  # its python3 is 3.11, the project's oldest supported Python
# The npm package whose tarball holds the CLI's native binary for this platform: the one
# @anthropic-ai/claude-code's postinstall copies into place.
CLAUDE_NATIVE_PACKAGE = "@anthropic-ai/claude-code-linux-x64"

DEBIAN_REPOSITORY = "loop-agent-debian"
BASE_REPOSITORY = "loop-agent-base"

PACKAGE_DIR = Path(loop_server.__file__).resolve().parent
RECIPE_DIR = PACKAGE_DIR.parent / "agent-image"

# Bumped when the builder itself changes what it puts into a layer.
BUILDER_REVISION = "1"


class RecipeError(Exception):
    """The recipe cannot be read or a build step failed; the text says why and what to do."""


@dataclass(frozen=True, slots=True)
class Recipe:
    claude_version: str
    debian_packages: tuple[str, ...]
    requirements: tuple[str, ...]
    recipe_dir: Path

    @classmethod
    def load(
        cls, claude_version: str = CLAUDE_CODE_VERSION, recipe_dir: Path = RECIPE_DIR
    ) -> Recipe:
        if not re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?", claude_version):
            raise RecipeError(f"--claude-version {claude_version!r} is not a version like 2.1.332")
        packages_file = recipe_dir / "debian-packages.txt"
        try:
            lines = packages_file.read_text().splitlines()
        except OSError as err:
            raise RecipeError(
                f"the image recipe is missing ({packages_file}: {err.strerror}); "
                "run `loop-server image build` from a loop-server source checkout"
            ) from err
        packages = tuple(
            line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
        )
        return cls(claude_version, packages, runtime_requirements(), recipe_dir)

    def file(self, name: str) -> bytes:
        try:
            return (self.recipe_dir / name).read_bytes()
        except OSError as err:
            raise RecipeError(f"the image recipe is missing {self.recipe_dir / name}") from err

    @property
    def debian_hash(self) -> str:
        return digest(["debian", DEBIAN_SUITE, BUILDER_REVISION, *self.debian_packages])

    @property
    def base_hash(self) -> str:
        return digest(
            [
                self.debian_hash,
                self.claude_version,
                *self.requirements,
                self.file("entrypoint.sh").decode(),
                self.file("loop-server.sh").decode(),
            ]
        )

    def build_hash(self) -> str:
        """The base layer plus every file of the project's package."""
        parts = [self.base_hash, __version__]
        for path in package_files():
            parts.append(str(path.relative_to(PACKAGE_DIR)))
            parts.append(hashlib.sha256(path.read_bytes()).hexdigest())
        return digest(parts)


def package_files() -> list[Path]:
    """The files of this project's package that the image carries (sources and data)."""
    return sorted(
        path
        for path in PACKAGE_DIR.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix in {".py", ".typed", ".md", ".json", ".txt"}
    )


def runtime_requirements() -> tuple[str, ...]:
    """The project's runtime dependencies as installed (the pins of pyproject.toml)."""
    try:
        requires = importlib.metadata.requires("loop-server") or []
    except importlib.metadata.PackageNotFoundError as err:
        raise RecipeError("loop-server is not installed; run `make install` first") from err
    return tuple(sorted(r for r in requires if "extra ==" not in r))


def digest(parts: list[str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]
