"""Embeddings as the indexer sees them: optional, and never a reason to fail (SPEC §10).

``Embedder`` is the provider seam (Ollama today). ``GuardedEmbedder`` wraps one so a failure
(refused, timeout, bad answer) is logged once, clearly, and the index carries on lexically:
rows are stored without vectors (filled in later) and searches rank by BM25 alone. After a
failure the provider is left alone for ``retry_after`` seconds, so a dead Ollama costs one
timeout per period rather than one per file or per search.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import trio

log = logging.getLogger(__name__)

BATCH_SIZE = 16  # texts per embed request


class EmbeddingError(Exception):
    """The provider could not embed; the message says what went wrong, for the log."""


class Embedder(Protocol):
    @property
    def dimensions(self) -> int: ...

    @property
    def name(self) -> str:
        """For logs: provider, model and address."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector of ``dimensions`` floats per text, in order; ``EmbeddingError`` if not."""
        ...


@dataclass(frozen=True, slots=True)
class EmbedderStatistics:
    requests: int
    failures: int
    last_error: str
    available: bool


class GuardedEmbedder:
    def __init__(self, embedder: Embedder, *, retry_after: float) -> None:
        self._embedder = embedder
        self._retry_after = retry_after
        self._retry_at = float("-inf")
        self._requests = 0
        self._failures = 0
        self._last_error = ""

    @property
    def dimensions(self) -> int:
        return self._embedder.dimensions

    @property
    def available(self) -> bool:
        return trio.current_time() >= self._retry_at

    async def embed(self, texts: Sequence[str]) -> list[list[float]] | None:
        """Vectors for ``texts``, or ``None`` when embeddings are unavailable right now."""
        if not self.available:
            return None
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH_SIZE):
            self._requests += 1
            try:
                vectors += await self._embedder.embed(texts[start : start + BATCH_SIZE])
            except EmbeddingError as err:
                self._fail(err)
                return None
        return vectors

    def _fail(self, err: EmbeddingError) -> None:
        self._failures += 1
        self._last_error = str(err)
        self._retry_at = trio.current_time() + self._retry_after
        log.error(
            "memory: embeddings unavailable (%s): %s; searching and indexing lexically, "
            "next attempt in %g s",
            self._embedder.name,
            err,
            self._retry_after,
        )

    def statistics(self) -> EmbedderStatistics:
        return EmbedderStatistics(
            requests=self._requests,
            failures=self._failures,
            last_error=self._last_error,
            available=self.available,
        )
