"""Combining rankings: reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009).

Each list contributes ``1 / (RRF_K + rank)`` (rank from 1) to every chunk it ranks. Only the
ranks count, so BM25's unbounded scores and cosine's [-1, 1] need no calibration against each
other; a chunk near the top of both lists beats one at the top of only one. ``RRF_K = 60`` is
the paper's value: it damps the advantage of the very first places.
"""

from __future__ import annotations

from collections.abc import Sequence

from loop_server.memory._rows import Hit

RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], limit: int) -> list[Hit]:
    scores: dict[tuple[str, int], float] = {}
    first: dict[tuple[str, int], Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            key = (hit.file_path, hit.chunk_index)
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + rank)
            first.setdefault(key, hit)
    ordered = sorted(scores, key=lambda key: (-scores[key], key))
    return [
        Hit(first[key].file_path, first[key].chunk_index, first[key].content, scores[key])
        for key in ordered[:limit]
    ]
