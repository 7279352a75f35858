"""The web console's built files (``loop_server/console_static/``, built from ``console/``).

They are read once, at start-up, into memory: a few hundred KiB that every page load needs, and
a fixed set of names means a request path can never reach a file outside the build.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable

STATIC_DIR = "console_static"
INDEX = "index.html"
ASSET_PREFIX = "console/"  # the page's assets, as the page names them (relative URLs)

CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str  # a digest of the body (unquoted, as werkzeug's ETag helpers take it)


class ConsoleAssets:
    """The built console by its path under the build dir (``index.html``, ``console/app.js``)."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._assets = {name: _asset(name, body) for name, body in files.items()}

    @classmethod
    def from_package(cls) -> ConsoleAssets:
        root = importlib.resources.files("loop_server").joinpath(STATIC_DIR)
        return cls(dict(_walk(root, "")))

    @property
    def built(self) -> bool:
        """False when the package was installed without the console build."""
        return INDEX in self._assets

    def index(self) -> Asset | None:
        return self._assets.get(INDEX)

    def asset(self, name: str) -> Asset | None:
        """The file the page asks for as ``console/<name>``; None for anything else."""
        return self._assets.get(ASSET_PREFIX + name)

    def names(self) -> list[str]:
        return sorted(self._assets)


def _walk(node: Traversable, prefix: str) -> Iterator[tuple[str, bytes]]:
    if not node.is_dir():
        return
    for child in node.iterdir():
        name = prefix + child.name
        if child.is_dir():
            yield from _walk(child, name + "/")
        elif _suffix(child.name) in CONTENT_TYPES:  # the build's files, nothing stray
            yield name, child.read_bytes()


def _suffix(name: str) -> str:
    return "." + name.rsplit(".", 1)[-1] if "." in name else ""


def _asset(name: str, body: bytes) -> Asset:
    content_type = CONTENT_TYPES.get(_suffix(name), "application/octet-stream")
    return Asset(body, content_type, hashlib.sha256(body).hexdigest()[:32])
