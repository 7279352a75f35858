"""Chunking at line boundaries under max_chunk_chars, and the stored hash (SPEC §10)."""

from __future__ import annotations

import hashlib
import random

import pytest

from loop_server.memory._chunks import content_hash, split_chunks, title_words


def test_content_within_the_limit_is_one_chunk() -> None:
    assert split_chunks("hello\nworld", 11) == ["hello\nworld"]


def test_cut_at_the_last_newline_before_the_limit() -> None:
    # "aaaa\nbbbb\ncccc": the last newline within 10 characters is at index 9.
    assert split_chunks("aaaa\nbbbb\ncccc", 10) == ["aaaa\nbbbb", "cccc"]


def test_hard_cut_without_a_newline() -> None:
    assert split_chunks("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_a_newline_only_at_position_zero_is_a_hard_cut() -> None:
    # rfind returns 0: cutting there would make an empty chunk, so the cut is hard.
    assert split_chunks("a" * 4 + "\n" + "b" * 10, 6)[0] == "aaaa"
    assert split_chunks("\n" + "b" * 10, 6) == ["\nbbbbb", "bbbbb"]


def test_leading_newlines_of_the_remainder_are_dropped() -> None:
    assert split_chunks("aaaa\n\n\n\nbbbb", 6) == ["aaaa\n", "bbbb"]


def test_limit_counts_characters_not_bytes() -> None:
    assert split_chunks("é" * 10, 5) == ["é" * 5, "é" * 5]


def test_chunks_stay_under_the_limit_and_keep_every_line() -> None:
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    lines = [" ".join(rng.choices(words, k=rng.randint(0, 30))) for _ in range(400)]
    content = "\n".join(lines).strip()
    chunks = split_chunks(content, 300)
    assert all(0 < len(chunk) <= 300 for chunk in chunks)
    assert "".join(chunks).replace("\n", "") == content.replace("\n", "")
    # Every cut but hard ones happens at a line end: no line is split across chunks.
    joined_lines = [line for chunk in chunks for line in chunk.split("\n") if line]
    assert joined_lines == [line for line in lines if line]


def test_invalid_limit() -> None:
    with pytest.raises(ValueError):
        split_chunks("abc", 0)


def test_hash_is_sha256_hex_of_utf8() -> None:
    assert content_hash("héllo") == hashlib.sha256("héllo".encode()).hexdigest()


def test_title_words_come_from_the_file_name() -> None:
    assert title_words("/n/deploy-checklist_v2.md") == "deploy checklist v2"
    assert title_words("/n/README.md") == "README"
