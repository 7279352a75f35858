"""Turning a file's text into what is stored: its hash, its chunks, its title (SPEC §10)."""

from __future__ import annotations

import hashlib
import os
import re

_TITLE_SEPARATORS = re.compile(r"[-_.\s]+")


def content_hash(content: str) -> str:
    """SHA-256 hex of the (trimmed) content, as upstream stores in the header row."""
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def split_chunks(content: str, max_chars: int) -> list[str]:
    """Pieces of at most ``max_chars`` characters, cut at the last newline before the limit.

    With no newline in reach (or only one at the very start) the cut is hard, at the limit.
    Newlines at the start of the remainder are dropped, so no chunk begins with blank lines.
    Lengths count characters (code points), not bytes: a cut never splits a character.
    """
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    chunks = []
    while content:
        if len(content) <= max_chars:
            chunks.append(content)
            break
        cut = content.rfind("\n", 0, max_chars)
        if cut <= 0:
            cut = max_chars
        chunks.append(content[:cut])
        content = content[cut:].lstrip("\n")
    return chunks


def title_words(file_path: str) -> str:
    """The file name as words (``deploy-checklist.md`` → ``deploy checklist``), indexed
    beside the content because notes are usually named after their topic."""
    stem = os.path.basename(file_path)
    if stem.endswith(".md"):
        stem = stem[: -len(".md")]
    return _TITLE_SEPARATORS.sub(" ", stem).strip()
