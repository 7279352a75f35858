"""What the server says about its agent image, and the build command's refusals."""

from __future__ import annotations

import io
from argparse import Namespace

from loop_server import __version__
from loop_server.agent_image import BUILD_COMMAND, Recipe, from_labels, missing
from loop_server.agent_image._cli import image_main
from loop_server.agent_image._status import (
    BUILD_LABEL,
    CLAUDE_VERSION_LABEL,
    SERVER_VERSION_LABEL,
)
from loop_server.cli import build_parser


def labels(build: str = "b1", version: str = __version__) -> dict[str, str]:
    return {BUILD_LABEL: build, SERVER_VERSION_LABEL: version, CLAUDE_VERSION_LABEL: "2.1.332"}


def test_missing_image_names_the_exact_build_command() -> None:
    assert missing("loop-agent:latest").message == (
        "agent image loop-agent:latest not found; build it with: loop-server image build"
    )
    assert missing("mine:1").message.endswith(
        "build it with: loop-server image build --image mine:1"
    )


def test_image_states_from_labels() -> None:
    ok = from_labels("i", labels(), expected_build="b1")
    assert (ok.state, ok.claude_version, ok.usable) == ("ok", "2.1.332", True)
    other_sources = from_labels("i", labels(), expected_build="b2")
    assert other_sources.state == "stale" and BUILD_COMMAND in other_sources.message
    old = from_labels("i", labels(version="0.0.1"))
    assert old.state == "stale" and "built for loop-server 0.0.1" in old.message
    assert from_labels("i", None).state == "unmanaged"
    assert from_labels("i", labels(), expected_build="").state == "ok"
    assert missing("i").usable is False


def test_recipe_hashes_change_with_the_cli_pin() -> None:
    a, b = Recipe.load("2.1.332"), Recipe.load("2.1.331")
    assert a.debian_hash == b.debian_hash  # a new CLI does not remake the Debian layer
    assert a.base_hash != b.base_hash and a.build_hash() != b.build_hash()
    assert "python3" in a.debian_packages and "bash" in a.debian_packages
    assert any(r.startswith("trio==") for r in a.requirements)


def run_build(*argv: str) -> tuple[int, str]:
    args = build_parser().parse_args(["image", "build", *argv])
    assert isinstance(args, Namespace)
    out, err = io.StringIO(), io.StringIO()
    code = image_main(args, env={}, out=out, err=err)
    return code, err.getvalue()


def test_a_bad_cli_version_is_refused_before_anything_is_built() -> None:
    code, err = run_build("--claude-version", "latest; rm -rf /", "--image", "x:y")
    assert code == 1
    assert "is not a version like 2.1.332" in err


def test_a_bad_config_file_is_a_usage_error(tmp_path: object) -> None:
    code, err = run_build("--config", "/nonexistent/loop-config.json")
    assert code == 2 and err.startswith("loop-server: ")
