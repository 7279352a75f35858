"""The memory tables, created by this package when the indexer opens (SPEC §7.1).

``memory_files`` has upstream's columns plus two of ours: ``title`` (the file name as words,
indexed for search) and ``file_stat`` (size, mtime, ctime, inode of the file when it was read,
so re-indexing an unchanged tree needs a ``stat`` per file, not a read and a hash).

``memory_fts`` is an FTS5 index over ``title`` and ``content``, kept in step by triggers
(external content: the text is stored once, in ``memory_files``). Header rows of large files
have no content and are left out of it, so they can never be a search hit.

``IF NOT EXISTS`` everywhere: opening is idempotent and safe for two processes at once (the
server and ``loop-server memory index``), because it runs inside one write transaction.
"""

from __future__ import annotations

import sqlite3

# Porter stemming over Unicode-aware word splitting (case and diacritics folded).
TOKENIZER = "porter unicode61"

STATEMENTS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS memory_files (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        file_path    TEXT    NOT NULL,
        chunk_index  INTEGER NOT NULL DEFAULT 0,
        content      TEXT    NOT NULL DEFAULT '',
        content_hash TEXT    NOT NULL DEFAULT '',
        embedding    BLOB,
        dimensions   INTEGER NOT NULL DEFAULT 0,
        dir_path     TEXT    NOT NULL DEFAULT '',
        updated_at   TEXT    NOT NULL,
        title        TEXT    NOT NULL DEFAULT '',
        file_stat    TEXT    NOT NULL DEFAULT '',
        UNIQUE (file_path, chunk_index, dir_path)
    )
    """,
    # Loading a scope's header rows (change detection) and filtering search hits by scope.
    """
    CREATE INDEX IF NOT EXISTS memory_files_scope
        ON memory_files (dir_path, chunk_index, file_path)
    """,
    f"""
    CREATE VIRTUAL TABLE IF NOT EXISTS memory_fts USING fts5(
        title, content,
        content = 'memory_files', content_rowid = 'id',
        tokenize = '{TOKENIZER}'
    )
    """,
    # Per-term document counts, read by the search to leave out words common in this corpus.
    "CREATE VIRTUAL TABLE IF NOT EXISTS memory_vocab USING fts5vocab(memory_fts, 'row')",
    """
    CREATE TRIGGER IF NOT EXISTS memory_files_fts_insert AFTER INSERT ON memory_files
    WHEN new.content != '' BEGIN
        INSERT INTO memory_fts (rowid, title, content) VALUES (new.id, new.title, new.content);
    END
    """,
    # External-content FTS5 needs the old values to remove a row from the index.
    """
    CREATE TRIGGER IF NOT EXISTS memory_files_fts_delete AFTER DELETE ON memory_files
    WHEN old.content != '' BEGIN
        INSERT INTO memory_fts (memory_fts, rowid, title, content)
            VALUES ('delete', old.id, old.title, old.content);
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS memory_files_fts_update AFTER UPDATE OF title, content
    ON memory_files BEGIN
        INSERT INTO memory_fts (memory_fts, rowid, title, content)
            SELECT 'delete', old.id, old.title, old.content WHERE old.content != '';
        INSERT INTO memory_fts (rowid, title, content)
            SELECT new.id, new.title, new.content WHERE new.content != '';
    END
    """,
)


def create_tables(conn: sqlite3.Connection) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)
