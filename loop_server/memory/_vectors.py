"""Embedding vectors as stored (little-endian float32 blobs, SPEC §7.1) and compared."""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Sequence


def pack_float32(vector: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def unpack_float32(blob: bytes) -> tuple[float, ...]:
    if len(blob) % 4:
        return ()
    return struct.unpack(f"<{len(blob) // 4}f", blob)


def norm(vector: Sequence[float]) -> float:
    return math.sqrt(sum(map(operator.mul, vector, vector)))


def cosine(a: Sequence[float], b: Sequence[float], a_norm: float | None = None) -> float:
    """Cosine similarity; 0 when the lengths differ or either vector is zero (as upstream)."""
    if len(a) != len(b) or not a:
        return 0.0
    a_norm = norm(a) if a_norm is None else a_norm
    b_norm = norm(b)
    if a_norm == 0 or b_norm == 0:
        return 0.0
    dot: float = sum(map(operator.mul, a, b))
    return dot / (a_norm * b_norm)


def as_float32(value: float) -> float:
    """``value`` rounded to float32 and written with the fewest digits that still round-trip,
    like Go's encoding of a ``float32`` score (0.83, not 0.8299999833106995)."""
    try:
        single = _to_float32(value)
    except OverflowError:  # beyond float32's range: no shorter form to find
        return value
    if not math.isfinite(single):
        return single
    for digits in range(1, 10):
        text = f"{single:.{digits}g}"
        if _to_float32(float(text)) == single:
            return float(text)
    return single


def _to_float32(value: float) -> float:
    (single,) = struct.unpack("<f", struct.pack("<f", value))
    return float(single)
