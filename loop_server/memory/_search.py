"""Searching a project's memory: BM25 always, fused with cosine ranking when a query vector
can be had (SPEC §10; what ``score`` means is in docs/memory.md)."""

from __future__ import annotations

import sqlite3
from functools import partial

from loop_server.memory._embedder import GuardedEmbedder
from loop_server.memory._lexical import lexical_hits
from loop_server.memory._query import query_terms
from loop_server.memory._ranking import reciprocal_rank_fusion
from loop_server.memory._rows import Hit, has_content, vector_hits
from loop_server.memory._vectors import as_float32
from loop_server.protocols import MemorySearchResult
from loop_server.store import Database

# Each ranking offers this many candidates (at least) to the fusion: a chunk ranked 40th
# lexically but 1st by meaning must still be seen.
FUSION_CANDIDATES = 50


async def search(
    db: Database, embedder: GuardedEmbedder | None, scope: str, query: str, top_k: int
) -> list[MemorySearchResult] | None:
    """The best ``top_k`` chunks for ``query`` in ``scope``; ``None`` when nothing is indexed."""
    words = query_terms(query)
    hybrid = embedder is not None and embedder.available
    pool = max(top_k, FUSION_CANDIDATES) if hybrid else top_k

    indexed, hits = await db.read(partial(_lexical, scope, words, pool))
    if not indexed:
        return None
    if hybrid:
        assert embedder is not None
        vectors = await embedder.embed([query])
        if vectors is not None:
            query_vector = vectors[0]
            nearest = await db.read(lambda conn: vector_hits(conn, scope, query_vector, pool))
            hits = reciprocal_rank_fusion([hits, nearest], top_k)
    return [
        MemorySearchResult(
            file_path=hit.file_path,
            content=hit.content,
            score=as_float32(hit.score),
            chunk_index=hit.chunk_index,
        )
        for hit in hits[:top_k]
    ]


def _lexical(
    scope: str, words: list[str], pool: int, conn: sqlite3.Connection
) -> tuple[bool, list[Hit]]:
    # One read transaction: "is anything indexed" and the hits come from the same snapshot.
    if not has_content(conn, scope):
        return False, []
    return True, lexical_hits(conn, scope, words, pool)
