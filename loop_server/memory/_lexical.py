"""Lexical ranking: BM25 over the FTS5 index, with a bounded cost (SPEC §10, issue 7 targets).

FTS5 scores every chunk a query matches before it can sort them, so the cost of ``a OR b OR c``
grows with how many chunks hold *any* of the words. One word that is common in this corpus
(not an English stopword, just frequent here) can make a question match most of 10^5 chunks and
take 100+ ms, while contributing almost nothing to the ranking (BM25 weighs a word by its
rarity; FTS5 gives words in more than half the chunks a weight of ~0).

So the words are looked up in the index's vocabulary first (``memory_vocab``, the document count
of each stemmed term) and taken rarest first while the chunks they match, summed, stay within
``MATCH_BUDGET``. When every word fits (small corpora, specific questions) the query is exact
BM25 over all of them. Otherwise the most common words are left out of the query: the chunks
ranked are those holding the rarer, more telling words. If even the rarest word alone exceeds
the budget, chunks holding all the words are ranked instead, and only if there are too few of
them, the chunks holding the rarest word.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing

from loop_server.memory._query import all_of, any_of
from loop_server.memory._rows import Hit, unique_hits
from loop_server.memory._schema import TOKENIZER

MATCH_BUDGET = 4000
MAX_WINDOW = 2000  # ids bound in one statement stay far below SQLite's variable limit
# BM25 with the file-name words weighted twice the body: a note named after its topic is usually
# about it. Given per query (not stored in the FTS5 config: changing that config under open
# read-only connections makes their next query fail).
RANK = "bm25(2.0, 1.0)"


def stems(words: Sequence[str]) -> list[list[str]]:
    """The index terms each word becomes under the index's own tokenizer (a private in-memory
    FTS5 table, so the stemming is exactly the index's, not a re-implementation of it)."""
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute(f"CREATE VIRTUAL TABLE words USING fts5(word, tokenize = '{TOKENIZER}')")
        conn.execute("CREATE VIRTUAL TABLE word_terms USING fts5vocab(words, 'instance')")
        conn.executemany("INSERT INTO words (rowid, word) VALUES (?, ?)", enumerate(words))
        terms: list[list[str]] = [[] for _ in words]
        for doc, term in conn.execute("SELECT doc, term FROM word_terms ORDER BY doc, offset"):
            terms[doc].append(term)
        return terms


def document_counts(conn: sqlite3.Connection, words: Sequence[str]) -> list[int]:
    """How many chunks hold each word (across all scopes; 0 for a word never indexed)."""
    counts = []
    for word_terms in stems(words):
        count = 0
        for term in word_terms:
            row = conn.execute("SELECT doc FROM memory_vocab WHERE term = ?", (term,)).fetchone()
            count = max(count, row[0] if row else 0)
        counts.append(count)
    return counts


def lexical_hits(
    conn: sqlite3.Connection, scope: str, words: Sequence[str], limit: int
) -> list[Hit]:
    """The best ``limit`` chunks of ``scope`` for ``words``; score = -bm25 (higher is better)."""
    if not words:
        return []
    counts = document_counts(conn, words)
    by_rarity = sorted(range(len(words)), key=lambda i: counts[i])
    chosen: list[str] = []
    matched = 0
    for i in by_rarity:
        if chosen and matched + counts[i] > MATCH_BUDGET:
            break
        chosen.append(words[i])
        matched += counts[i]
    if matched <= MATCH_BUDGET or len(words) == 1:
        return _ranked(conn, scope, any_of(chosen), limit)
    # Even the rarest word is everywhere: rank the chunks that hold all of the words.
    hits = _ranked(conn, scope, all_of(words), limit)
    return hits if len(hits) >= limit else _ranked(conn, scope, any_of(chosen), limit)


def _ranked(conn: sqlite3.Connection, scope: str, match: str, limit: int) -> list[Hit]:
    # FTS5 sorts by rank and cuts first (cheap: no chunk row is read for the chunks cut off);
    # then the scope filter reads the few chunk rows left. If it leaves too few while more
    # chunks matched, the cut was too tight for this scope: rank the whole match instead.
    window = 4 * limit + 50
    if window > MAX_WINDOW:  # a huge top_k: one statement, no list of ids to bind
        return _ranked_all(conn, scope, match, limit)
    ranked = conn.execute(
        "SELECT rowid, rank FROM memory_fts WHERE memory_fts MATCH ? AND rank MATCH ?"
        " ORDER BY rank LIMIT ?",
        (match, RANK, window),
    ).fetchall()
    marks = ",".join("?" * len(ranked))
    # The scope is checked here, not in SQL: given "dir_path IN (...)" the planner prefers the
    # scope index and walks every row of the scope instead of looking up these few ids.
    rows = {
        row_id: (path, index, content)
        for row_id, path, index, content, dir_path in conn.execute(
            "SELECT id, file_path, chunk_index, content, dir_path FROM memory_files"
            f" WHERE id IN ({marks})",
            [row_id for row_id, _ in ranked],
        )
        if dir_path in (scope, "")
    }
    ordered = sorted(
        (rank, *rows[row_id]) for row_id, rank in ranked if row_id in rows
    )  # rank, then file path and chunk index: a stable order for ties
    hits = unique_hits(Hit(path, index, content, -rank) for rank, path, index, content in ordered)
    if len(hits) >= limit or len(ranked) < window:
        return hits[:limit]
    return _ranked_all(conn, scope, match, limit)


def _ranked_all(conn: sqlite3.Connection, scope: str, match: str, limit: int) -> list[Hit]:
    rows = conn.execute(
        "SELECT m.file_path, m.chunk_index, m.content, f.rank"
        " FROM (SELECT rowid, rank FROM memory_fts WHERE memory_fts MATCH ? AND rank MATCH ?)"
        " AS f JOIN memory_files AS m ON m.id = f.rowid"
        " WHERE m.dir_path IN (?, '')"
        " ORDER BY f.rank, m.file_path, m.chunk_index LIMIT ?",
        # Twice the limit: a file indexed in both scopes yields two rows; one is dropped.
        (match, RANK, scope, 2 * limit),
    )
    return unique_hits(Hit(path, index, content, -rank) for path, index, content, rank in rows)[
        :limit
    ]
