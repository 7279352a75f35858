"""The ``memory`` section of the config file, typed and validated (SPEC §10).

Upstream's shape::

    "memory": {
      "enabled": true,
      "paths": ["docs", "!docs/drafts", "/shared/notes"],
      "max_chunk_chars": 5000,
      "reindex_interval_sec": 300,
      "embeddings": {"provider": "ollama", "model": "nomic-embed-text",
                     "ollama_url": "http://localhost:11434"}
    }

Zero or negative numbers fall back to the defaults, as upstream's ``<= 0`` checks do; values of
the wrong type are errors, so a typo is reported at start-up instead of silently ignored.
Without an ``embeddings`` section (or with provider ``""``/``"none"``) the index is lexical only:
no service is contacted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_MAX_CHUNK_CHARS = 5000
DEFAULT_REINDEX_INTERVAL_SEC = 300.0
DEFAULT_MAX_FILE_BYTES = 16 * 1024 * 1024
DEFAULT_OLLAMA_URL = "http://localhost:11434"
DEFAULT_OLLAMA_MODEL = "nomic-embed-text"
DEFAULT_DIMENSIONS = 768  # nomic-embed-text
DEFAULT_TIMEOUT_SEC = 30.0
DEFAULT_RETRY_AFTER_SEC = 60.0


class MemoryConfigError(ValueError):
    """The ``memory`` config section is malformed; the message names the key."""


@dataclass(frozen=True, slots=True)
class EmbeddingsConfig:
    provider: str = "ollama"
    model: str = DEFAULT_OLLAMA_MODEL
    ollama_url: str = DEFAULT_OLLAMA_URL
    dimensions: int = DEFAULT_DIMENSIONS
    # One embed request (connect + answer) must finish within this many seconds.
    timeout_sec: float = DEFAULT_TIMEOUT_SEC
    # After a failure, embeddings are not tried again for this long (lexical only meanwhile),
    # so an unreachable Ollama costs one timeout per period, not one per file or per search.
    retry_after_sec: float = DEFAULT_RETRY_AFTER_SEC


@dataclass(frozen=True, slots=True)
class MemoryConfig:
    enabled: bool = True
    paths: tuple[str, ...] = ()
    max_chunk_chars: int = DEFAULT_MAX_CHUNK_CHARS
    reindex_interval_sec: float = DEFAULT_REINDEX_INTERVAL_SEC
    # Larger .md files are skipped with a warning rather than read into memory whole.
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    embeddings: EmbeddingsConfig | None = field(default=None)
    # Dirs outside a project that the project's own .loop/config.json may name in its
    # memory.paths (absolute; the project dir itself is always allowed).
    project_allowlist: tuple[str, ...] = ()

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> MemoryConfig:
        """Build from ``Config.extra`` (the config file's keys the core settings don't know)."""
        section = extra.get("memory")
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise MemoryConfigError("memory must be an object")
        return cls(
            enabled=_bool(section, "enabled", True),
            paths=_paths(section.get("paths")),
            max_chunk_chars=_int(section, "max_chunk_chars", DEFAULT_MAX_CHUNK_CHARS),
            reindex_interval_sec=_number(
                section, "reindex_interval_sec", DEFAULT_REINDEX_INTERVAL_SEC
            ),
            max_file_bytes=_int(section, "max_file_bytes", DEFAULT_MAX_FILE_BYTES),
            embeddings=_embeddings(section.get("embeddings")),
            project_allowlist=_allowlist(section.get("project_allowlist")),
        )


def _bool(section: Mapping[str, Any], key: str, default: bool) -> bool:
    value = section.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise MemoryConfigError(f"memory.{key} must be true or false")
    return value


def _int(section: Mapping[str, Any], key: str, default: int, prefix: str = "memory") -> int:
    value = section.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise MemoryConfigError(f"{prefix}.{key} must be an integer")
    return int(value) if value > 0 else default


def _number(section: Mapping[str, Any], key: str, default: float, prefix: str = "memory") -> float:
    value = section.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MemoryConfigError(f"{prefix}.{key} must be a number")
    return float(value) if value > 0 else default


def _paths(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MemoryConfigError("memory.paths must be a list of strings")
    for item in value:
        if "\x00" in item:
            raise MemoryConfigError(f"memory.paths entry {item!r} contains a NUL byte")
    return tuple(value)


def _allowlist(value: Any) -> tuple[str, ...]:
    key = "memory.project_allowlist"
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MemoryConfigError(f"{key} must be a list of strings")
    dirs = []
    for item in value:
        expanded = os.path.expanduser(item)
        if "\x00" in item or not os.path.isabs(expanded):
            raise MemoryConfigError(f"{key} entry {item!r} must be an absolute path")
        dirs.append(os.path.normpath(expanded))
    return tuple(dirs)


def _string(section: Mapping[str, Any], key: str, default: str) -> str:
    value = section.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise MemoryConfigError(f"memory.embeddings.{key} must be a string")
    return value


def _embeddings(value: Any) -> EmbeddingsConfig | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise MemoryConfigError("memory.embeddings must be an object")
    provider = value.get("provider", "")
    if not isinstance(provider, str):
        raise MemoryConfigError("memory.embeddings.provider must be a string")
    if provider in ("", "none"):
        return None
    if provider != "ollama":
        raise MemoryConfigError(
            f'memory.embeddings.provider "{provider}" is not supported (only "ollama" or "none")'
        )
    url = _string(value, "ollama_url", DEFAULT_OLLAMA_URL).rstrip("/")
    if not _valid_url(url):
        raise MemoryConfigError(
            f"memory.embeddings.ollama_url {url!r} must be an http:// or https:// URL with a host"
        )
    prefix = "memory.embeddings"
    return EmbeddingsConfig(
        provider=provider,
        model=_string(value, "model", DEFAULT_OLLAMA_MODEL),
        ollama_url=url,
        dimensions=_int(value, "dimensions", DEFAULT_DIMENSIONS, prefix),
        timeout_sec=_number(value, "timeout_sec", DEFAULT_TIMEOUT_SEC, prefix),
        retry_after_sec=_number(value, "retry_after_sec", DEFAULT_RETRY_AFTER_SEC, prefix),
    )


def _valid_url(url: str) -> bool:
    if any(ord(ch) < 0x21 for ch in url):  # NUL, spaces, control characters
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
