"""The ``memory`` config section: defaults, upstream's shape, validation (SPEC §10)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from loop_server.memory import EmbeddingsConfig, MemoryConfig, MemoryConfigError


def test_defaults_are_lexical_only() -> None:
    config = MemoryConfig.from_extra({})
    assert config == MemoryConfig()
    assert config.enabled is True
    assert config.paths == ()
    assert config.max_chunk_chars == 5000
    assert config.reindex_interval_sec == 300
    assert config.embeddings is None


def test_upstream_shape() -> None:
    config = MemoryConfig.from_extra(
        {
            "memory": {
                "paths": ["docs", "!docs/drafts", "/shared/notes"],
                "max_chunk_chars": 2000,
                "reindex_interval_sec": 60,
                "embeddings": {
                    "provider": "ollama",
                    "model": "nomic-embed-text",
                    "ollama_url": "http://localhost:11434/",
                },
            }
        }
    )
    assert config.paths == ("docs", "!docs/drafts", "/shared/notes")
    assert config.max_chunk_chars == 2000
    assert config.reindex_interval_sec == 60.0
    assert config.embeddings == EmbeddingsConfig(
        provider="ollama", model="nomic-embed-text", ollama_url="http://localhost:11434"
    )
    assert config.embeddings.dimensions == 768


def test_zero_and_negative_numbers_mean_default() -> None:
    config = MemoryConfig.from_extra({"memory": {"max_chunk_chars": 0, "reindex_interval_sec": -5}})
    assert config.max_chunk_chars == 5000
    assert config.reindex_interval_sec == 300


def test_provider_none_is_lexical() -> None:
    for provider in ("", "none"):
        assert (
            MemoryConfig.from_extra({"memory": {"embeddings": {"provider": provider}}}).embeddings
            is None
        )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("yes", "memory must be an object"),
        ({"paths": "docs"}, "memory.paths must be a list of strings"),
        ({"paths": [1]}, "memory.paths must be a list of strings"),
        ({"paths": ["a\x00b"]}, "contains a NUL byte"),
        ({"max_chunk_chars": "5000"}, "memory.max_chunk_chars must be an integer"),
        ({"max_chunk_chars": True}, "memory.max_chunk_chars must be an integer"),
        ({"max_chunk_chars": 1.5}, "memory.max_chunk_chars must be an integer"),
        ({"reindex_interval_sec": "5m"}, "memory.reindex_interval_sec must be a number"),
        ({"project_allowlist": "/srv"}, "memory.project_allowlist must be a list of strings"),
        ({"project_allowlist": ["notes"]}, "must be an absolute path"),
        ({"project_allowlist": ["/a\x00b"]}, "must be an absolute path"),
        ({"enabled": "no"}, "memory.enabled must be true or false"),
        ({"embeddings": []}, "memory.embeddings must be an object"),
        ({"embeddings": {"provider": "openai"}}, '"openai" is not supported'),
        ({"embeddings": {"provider": "ollama", "ollama_url": "localhost:11434"}}, "ollama_url"),
        ({"embeddings": {"provider": "ollama", "ollama_url": "http://h:x"}}, "ollama_url"),
        ({"embeddings": {"provider": "ollama", "ollama_url": "http://h\x00:1"}}, "ollama_url"),
        ({"embeddings": {"provider": "ollama", "model": 3}}, "embeddings.model must be a string"),
        (
            {"embeddings": {"provider": "ollama", "dimensions": "768"}},
            "dimensions must be an integer",
        ),
    ],
)
def test_invalid_values_name_the_key(section: Any, message: str) -> None:
    with pytest.raises(MemoryConfigError, match=message.replace("(", r"\(")):
        MemoryConfig.from_extra({"memory": section})


def test_project_allowlist_is_normalised() -> None:
    config = MemoryConfig.from_extra({"memory": {"project_allowlist": ["/srv/notes/", "~/x"]}})
    assert config.project_allowlist == ("/srv/notes", os.path.expanduser("~/x"))
