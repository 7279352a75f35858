"""The Ollama embeddings provider: ``POST {url}/api/embed`` (SPEC §10).

Request ``{"model": M, "input": [text, ...]}``, answer ``{"embeddings": [[float, ...], ...]}``.
Every way this can go wrong becomes an ``EmbeddingError`` whose text names the step (the
prefixes follow upstream's: "ollama embed request", "ollama decode response", ...), so the
log line alone tells a user what to fix.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import trio

from loop_server.memory._embedder import EmbeddingError
from loop_server.memory._http import HttpError, post_json

_FLOAT32_MAX = 3.4028234663852886e38
_MAX_ERROR_TEXT = 200


class OllamaEmbedder:
    def __init__(
        self,
        *,
        url: str,
        model: str,
        dimensions: int,
        timeout: float,
    ) -> None:
        self._endpoint = url.rstrip("/") + "/api/embed"
        self._model = model
        self._dimensions = dimensions
        self._timeout = timeout

    @property
    def dimensions(self) -> int:
        return self._dimensions

    @property
    def name(self) -> str:
        return f"ollama model {self._model} at {self._endpoint}"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        payload = {"model": self._model, "input": list(texts)}
        # A response holds len(texts) vectors of ~20 bytes per number as JSON text.
        limit = 1024 * 1024 + 64 * self._dimensions * len(texts)
        try:
            with trio.fail_after(self._timeout):
                status, body = await post_json(self._endpoint, payload, max_response_bytes=limit)
        except trio.TooSlowError:
            raise EmbeddingError(
                f"ollama embed request to {self._endpoint}: no answer within {self._timeout:g} s"
            ) from None
        except HttpError as err:
            raise EmbeddingError(f"ollama embed request to {self._endpoint}: {err}") from err
        if status != 200:
            raise EmbeddingError(
                f"ollama embed request to {self._endpoint}: status {status}: {_error_text(body)}"
            )
        return self._vectors(body, len(texts))

    def _vectors(self, body: bytes, expected: int) -> list[list[float]]:
        try:
            data = json.loads(body)
        except ValueError as err:
            raise EmbeddingError(f"ollama decode response: {err}") from err
        vectors = data.get("embeddings") if isinstance(data, dict) else None
        if not isinstance(vectors, list):
            raise EmbeddingError('ollama decode response: no "embeddings" list in the answer')
        if len(vectors) != expected:
            raise EmbeddingError(
                f"ollama embed: expected {expected} embeddings, got {len(vectors)}"
            )
        for vector in vectors:
            if not isinstance(vector, list) or not all(_is_float32(x) for x in vector):
                raise EmbeddingError(
                    "ollama decode response: an embedding is not a list of numbers"
                )
            if len(vector) != self._dimensions:
                raise EmbeddingError(
                    f"ollama embed: model {self._model} returned {len(vector)}-dimensional "
                    f"embeddings, expected {self._dimensions} (memory.embeddings.dimensions)"
                )
        return [[float(x) for x in vector] for vector in vectors]


def _is_float32(value: object) -> bool:
    # NaN and the infinities fail the comparison; huge JSON integers compare exactly.
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and abs(value) <= _FLOAT32_MAX
    )


def _error_text(body: bytes) -> str:
    """Ollama answers errors as ``{"error": "..."}``; anything else is shown as text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        text = data["error"]
    if len(text) > _MAX_ERROR_TEXT:
        text = text[:_MAX_ERROR_TEXT] + "…"
    return text or "(empty body)"
