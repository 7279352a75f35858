"""``loop-server image build`` on the image ``make agent-image`` built: labelled, current."""

from __future__ import annotations

import subprocess
import sys

import docker

from loop_server import __version__
from loop_server.agent_image import CLAUDE_CODE_VERSION, Recipe
from loop_server.agent_image._status import (
    BUILD_LABEL,
    CLAUDE_VERSION_LABEL,
    SERVER_VERSION_LABEL,
)


def test_the_built_image_is_labelled_and_a_rebuild_does_nothing(
    docker_client: docker.DockerClient, agent_image: str
) -> None:
    labels = docker_client.images.get(agent_image).labels
    assert labels[SERVER_VERSION_LABEL] == __version__
    assert labels[CLAUDE_VERSION_LABEL] == CLAUDE_CODE_VERSION
    assert labels[BUILD_LABEL] == Recipe.load().build_hash()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loop_server",
            "image",
            "build",
            "--recipe",
            "offline",
            "--image",
            agent_image,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"{agent_image} is current" in done.stdout


def test_the_image_holds_the_tools_and_runs_as_the_given_user(
    docker_client: docker.DockerClient, agent_image: str
) -> None:
    script = (
        "id -u; id -g; echo $HOME; claude --version; loop-server --version; "
        "git --version; rg --version | head -n 1; echo IS_SANDBOX=${IS_SANDBOX:-}"
    )
    out = (
        docker_client.containers.run(
            agent_image,
            ["bash", "-c", script],
            environment={
                "HOST_UID": "4321",
                "HOST_GID": "4322",
                "HOST_USER": "ada",
                "HOME": "/home/ada",
            },
            network_mode="none",
            remove=True,
        )
        .decode()
        .splitlines()
    )
    assert out[:3] == ["4321", "4322", "/home/ada"]
    assert out[3] == f"{CLAUDE_CODE_VERSION} (Claude Code)"
    assert out[4] == f"loop-server {__version__}"
    assert out[5].startswith("git version ") and out[6].startswith("ripgrep ")
    # Not root: no sandbox claim needed. As root (no HOST_UID) the entrypoint makes one.
    assert out[7] == "IS_SANDBOX="
    as_root = docker_client.containers.run(
        agent_image, ["sh", "-c", "id -u; echo $IS_SANDBOX"], network_mode="none", remove=True
    )
    assert as_root.decode().split() == ["0", "1"]
