"""Which paths are a project's memory, in which scope, minus which exclusions (docs/memory.md)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from loop_server.memory import (
    GLOBAL_SCOPE,
    MemoryConfig,
    MemoryRoot,
    auto_memory_dir,
    check_project_dir,
    memory_plan,
    open_memory_indexer,
)
from loop_server.store import Database
from tests.memory.conftest import auto_memory, set_project_paths, write


def notes_root(project: Path) -> MemoryRoot:
    """``<project>/memory``, indexed for every project, confined to the project."""
    return MemoryRoot(str(project / "memory"), str(project), (os.path.realpath(project),))


def test_auto_memory_dir_replaces_slashes(home: Path) -> None:
    expected = home / ".claude" / "projects" / "-work-my-app" / "memory"
    assert auto_memory_dir("/work/my-app", home) == str(expected)


def test_auto_memory_dir_finds_claude_codes_spelling(home: Path) -> None:
    # Claude Code also turns "." and "_" into "-"; that spelling is used when only it exists.
    claude = home / ".claude" / "projects" / "-work-my-app-v2" / "memory"
    assert auto_memory_dir("/work/my_app.v2", home).endswith("-work-my_app.v2/memory")
    claude.mkdir(parents=True)
    assert auto_memory_dir("/work/my_app.v2", home) == str(claude)


def test_the_containers_claude_dir_holds_auto_memory_too(
    home: Path, project: Path, tmp_path: Path
) -> None:
    """The server's agents keep Claude's state in its own dir (CLAUDE_CONFIG_DIR), so their
    auto-memory for the project is there, besides the user's own ~/.claude one."""
    claude_dir = tmp_path / "data" / "claude"
    plan = memory_plan(str(project), [], home, claude_dir=claude_dir)
    key = str(project).replace("/", "-")
    assert plan.roots == (
        MemoryRoot(str(auto_memory(home, project)), str(project)),
        MemoryRoot(str(claude_dir / "projects" / key / "memory"), str(project)),
        notes_root(project),
    )


async def test_auto_memory_in_the_claude_dir_is_searched(
    db: Database, home: Path, project: Path, tmp_path: Path
) -> None:
    claude_dir = tmp_path / "data" / "claude"
    key = str(project).replace("/", "-")
    write(
        claude_dir / "projects" / key / "memory" / "deploy.md",
        "# Deploys\nUse blue-green rollouts.",
    )
    indexer = await open_memory_indexer(db, MemoryConfig(), home=home, claude_dir=claude_dir)
    results = await indexer.search(str(project), "rollouts", 5)
    assert results is not None
    assert [r.file_path for r in results] == [
        str(claude_dir / "projects" / key / "memory" / "deploy.md")
    ]


def test_scopes(home: Path, project: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    plan = memory_plan(str(project), ["docs", str(shared), "~/notes"], home)
    assert plan.roots == (
        MemoryRoot(str(auto_memory(home, project)), str(project)),  # project scope
        notes_root(project),  # the project's own notes dir: project scope
        MemoryRoot(str(project / "docs"), str(project)),  # relative: project scope
        MemoryRoot(str(shared), GLOBAL_SCOPE),  # absolute: global scope
        MemoryRoot(str(home / "notes"), GLOBAL_SCOPE),  # ~ is the (injected) home
    )
    assert plan.exclusions == ()


def test_project_config_adds_paths_after_global_ones(home: Path, project: Path) -> None:
    set_project_paths(project, ["notes", "!notes/private", "/abs/team"])
    plan = memory_plan(str(project), ["docs"], home, project_allowlist=["/abs"])
    assert [root.path for root in plan.roots[2:]] == [
        str(project / "docs"),
        str(project / "notes"),
        "/abs/team",
    ]
    assert plan.roots[-1].scope == GLOBAL_SCOPE
    assert plan.exclusions == (str(project / "notes" / "private"),)


def test_exclusions_resolve_like_paths(home: Path, project: Path) -> None:
    plan = memory_plan(str(project), ["!drafts/", "!/abs/x", "!~/tmp", "!"], home)
    assert plan.exclusions == (str(project / "drafts"), "/abs/x", str(home / "tmp"))
    assert len(plan.roots) == 2


def test_duplicates_keep_the_first_mention(home: Path, project: Path) -> None:
    set_project_paths(project, ["./docs/", "docs", str(project / "docs")])
    plan = memory_plan(str(project), ["docs", "docs"], home)
    assert plan.roots[2:] == (MemoryRoot(str(project / "docs"), str(project)),)


def test_bad_project_config_is_ignored_with_a_warning(
    home: Path, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    write(project / ".loop" / "config.json", "{ not json")
    assert len(memory_plan(str(project), [], home).roots) == 2
    assert "not valid JSON" in caplog.text
    write(project / ".loop" / "config.json", '{"memory": {"paths": "docs"}}')
    assert len(memory_plan(str(project), [], home).roots) == 2
    write(project / ".loop" / "config.json", '{"memory": {"paths": ["ok", 3, "bad\\u0000"]}}')
    assert [r.path for r in memory_plan(str(project), [], home).roots[2:]] == [str(project / "ok")]
    assert "ignoring memory.paths entry 3" in caplog.text


def test_project_config_without_memory_section(home: Path, project: Path) -> None:
    write(project / ".loop" / "config.json", '{"mcp": {}}')
    assert len(memory_plan(str(project), [], home).roots) == 2


@pytest.mark.parametrize(
    ("path", "message"),
    [("relative/dir", "must be an absolute path"), ("/a\x00b", "must not contain NUL")],
)
def test_project_dir_must_be_absolute_and_nul_free(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_project_dir(path)


def test_project_dir_is_normalised() -> None:
    assert check_project_dir("/work/proj/") == "/work/proj"
    assert check_project_dir("/work/./proj") == "/work/proj"


def test_project_config_paths_outside_the_project_are_ignored_with_a_warning(
    home: Path, project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    outside = tmp_path / "host-secrets"
    outside.mkdir()
    (project / "escape").symlink_to(outside)
    set_project_paths(
        project, [str(outside), "../host-secrets", "escape", "~/notes", "docs", "!/etc"]
    )
    plan = memory_plan(str(project), [], home)
    assert [root.path for root in plan.roots[2:]] == [str(project / "docs")]
    assert plan.exclusions == ("/etc",)  # an exclusion only narrows what is indexed
    ignored = [r.getMessage() for r in caplog.records if "outside the project" in r.getMessage()]
    assert len(ignored) == 4
    assert any(str(outside) in message for message in ignored)


def test_project_allowlist_admits_dirs_outside_the_project(
    home: Path, project: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    (shared / "team").mkdir(parents=True)
    set_project_paths(project, [str(shared / "team"), str(tmp_path / "sharedx")])
    plan = memory_plan(str(project), [], home, project_allowlist=[str(shared)])
    # Separator-safe: "sharedx" is not inside "shared".
    assert [root.path for root in plan.roots[2:]] == [str(shared / "team")]
    assert plan.roots[2].scope == GLOBAL_SCOPE


def test_global_config_paths_are_not_confined(home: Path, project: Path, tmp_path: Path) -> None:
    plan = memory_plan(str(project), [str(tmp_path / "anywhere")], home)
    assert plan.roots[2] == MemoryRoot(str(tmp_path / "anywhere"), GLOBAL_SCOPE)


def test_the_projects_memory_dir_is_a_root_by_default(home: Path, project: Path) -> None:
    plan = memory_plan(str(project), [], home)
    assert plan.roots == (
        MemoryRoot(str(auto_memory(home, project)), str(project)),
        notes_root(project),
    )


def test_a_memory_dir_linked_out_of_the_project_is_ignored_with_a_warning(
    home: Path, project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An agent can replace ``memory/`` with a link to a host dir: that must not make the host
    dir searchable. A link inside the project (or into the allowlist) is followed."""
    caplog.set_level(logging.WARNING)
    outside = tmp_path / "host-secrets"
    outside.mkdir()
    (project / "memory").symlink_to(outside)
    assert memory_plan(str(project), [], home).roots == (
        MemoryRoot(str(auto_memory(home, project)), str(project)),
    )
    assert "outside the project" in caplog.text
    allowed = memory_plan(str(project), [], home, project_allowlist=[str(outside)])
    assert allowed.roots[1].path == str(project / "memory")
