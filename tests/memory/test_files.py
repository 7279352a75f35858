"""Walking memory roots: *.md only, exclusions, symlinks, odd files (SPEC §10)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from loop_server.memory._files import is_within, list_root, read_regular_file, resolve_exclusions
from tests.memory.conftest import write


def paths(root: Path, *exclusions: Path) -> list[str]:
    listing = list_root(str(root), resolve_exclusions(str(e) for e in exclusions))
    return [found.path for found in listing.files]


def test_only_markdown_files_recursively(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write(root / "a.md", "a")
    write(root / "sub" / "deeper" / "b.md", "b")
    write(root / "notes.txt", "no")
    write(root / "c.MD", "upstream matches the suffix case-sensitively")
    (root / "dir.md").mkdir()
    assert paths(root) == [str(root / "a.md"), str(root / "sub" / "deeper" / "b.md")]


def test_separator_safe_exclusion(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write(root / "drafts" / "x.md", "x")
    write(root / "drafts-v2" / "y.md", "y")
    write(root / "keep.md", "k")
    assert paths(root, root / "drafts") == [
        str(root / "drafts-v2" / "y.md"),
        str(root / "keep.md"),
    ]
    assert sorted(paths(root, root / "keep.md")) == sorted(
        [str(root / "drafts" / "x.md"), str(root / "drafts-v2" / "y.md")]
    )


def test_excluding_the_root_or_a_parent_excludes_everything(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write(root / "a.md", "a")
    assert paths(root, root) == []
    assert paths(root, tmp_path) == []


def test_exclusion_matches_after_symlink_resolution(tmp_path: Path) -> None:
    real = tmp_path / "real"
    write(real / "drafts" / "x.md", "x")
    write(real / "ok.md", "ok")
    (tmp_path / "alias").symlink_to(real)
    # The root is walked as its resolved path; an exclusion named through the alias still hits.
    assert paths(tmp_path / "alias", tmp_path / "alias" / "drafts") == [str(real / "ok.md")]


def test_symlinked_root_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere" / "notes"
    write(real / "a.md", "a")
    (tmp_path / "link").symlink_to(real)
    listing = list_root(str(tmp_path / "link"), ())
    assert listing.resolved == str(real)
    assert [f.path for f in listing.files] == [str(real / "a.md")]


def test_symlinked_subdirectories_are_not_descended(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write(root / "a.md", "a")
    write(tmp_path / "other" / "b.md", "b")
    (root / "loop").symlink_to(root)  # a cycle must not make the walk endless
    (root / "other").symlink_to(tmp_path / "other")
    assert paths(root) == [str(root / "a.md")]


def test_symlinked_file_inside_the_root_is_indexed(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write(root / "real.md", "r")
    (root / "alias.md").symlink_to(root / "real.md")
    assert paths(root) == [str(root / "alias.md"), str(root / "real.md")]


def test_symlinked_file_leading_outside_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    root = tmp_path / "m"
    write(root / "a.md", "a")
    secret = write(tmp_path / "secret" / "id_rsa", "KEY")
    (root / "steal.md").symlink_to(secret)
    (root / "broken.md").symlink_to(root / "missing.md")
    assert paths(root) == [str(root / "a.md")]
    assert "steal.md: it links outside" in caplog.text


def test_single_file_root(tmp_path: Path) -> None:
    note = write(tmp_path / "note.md", "n")
    write(tmp_path / "note.txt", "t")
    assert paths(note) == [str(note)]
    assert paths(tmp_path / "note.txt") == []
    assert paths(note, note) == []


def test_missing_root_is_empty(tmp_path: Path) -> None:
    listing = list_root(str(tmp_path / "nope"), ())
    assert listing.resolved == ""
    assert listing.files == ()


def test_fifo_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    os.mkfifo(root / "pipe.md")
    # Listed files are regular files only; reading one that turned into a FIFO returns None
    # instead of blocking for a writer.
    assert paths(root) == []
    assert read_regular_file(str(root / "pipe.md"), 1000) is None


def test_read_regular_file_caps_size(tmp_path: Path) -> None:
    note = write(tmp_path / "big.md", "x" * 100)
    assert read_regular_file(str(note), 100) == b"x" * 100
    assert read_regular_file(str(note), 99) is None


def test_is_within() -> None:
    assert is_within("/a/b", "/a/b")
    assert is_within("/a/b/c", "/a/b")
    assert not is_within("/a/bc", "/a/b")
    assert is_within("/a", "/")
