"""``loop-server image build``: build the agent image the config names."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import docker
import docker.errors

from loop_server.agent_image._dockerfile import build_with_dockerfile
from loop_server.agent_image._offline import build_offline, default_cache_dir
from loop_server.agent_image._recipe import CLAUDE_CODE_VERSION, Recipe, RecipeError
from loop_server.config import ConfigError, load_config

RECIPES = ("auto", "offline", "dockerfile")


def add_image_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = commands.add_parser(
        "image", help="the agent image", description="Build the agent containers' image."
    )
    actions = image.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="build the agent image (the real Claude Code CLI, bash, git, ripgrep, loop-server)",
        description="Build the image agent and shell containers run (container_image, default "
        "loop-agent:latest). Does nothing when it is current.",
    )
    build.add_argument("--image", help="image name (default: the config's container_image)")
    build.add_argument(
        "--claude-version",
        default=CLAUDE_CODE_VERSION,
        help=f"Claude Code CLI version from npm (default {CLAUDE_CODE_VERSION})",
    )
    build.add_argument(
        "--recipe",
        choices=RECIPES,
        default="auto",
        help="offline: from Debian packages and npm, no registry (needs mmdebstrap and npm); "
        "dockerfile: docker build from registry images; auto: offline where mmdebstrap is "
        "installed, else dockerfile",
    )
    build.add_argument(
        "--cache-dir",
        default=None,
        help=f"download cache of the offline recipe (default {default_cache_dir()})",
    )
    build.add_argument("--force", action="store_true", help="rebuild every layer")
    build.add_argument("--data-dir", default=None, help="data dir (env LOOP_DATA_DIR)")
    build.add_argument("--config", metavar="FILE", help="config file (env LOOP_CONFIG)")


def image_main(
    args: argparse.Namespace,
    env: Mapping[str, str] = os.environ,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    def say(text: str) -> None:
        print(f"image build: {text}", file=out, flush=True)

    image = args.image
    if not image:
        try:
            config = load_config({"data_dir": args.data_dir}, env, config_flag=args.config)
        except ConfigError as error:
            print(f"loop-server: {error}", file=err)
            return 2
        image = config.container_image
    recipe_name = args.recipe
    if recipe_name == "auto":
        recipe_name = "offline" if shutil.which("mmdebstrap") else "dockerfile"
    started = time.monotonic()
    try:
        recipe = Recipe.load(args.claude_version)
        client = _client()
        try:
            if recipe_name == "offline":
                cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
                build_offline(client, recipe, image, cache_dir=cache, say=say, force=args.force)
            else:
                build_with_dockerfile(client, recipe, image, say=say, force=args.force)
        finally:
            client.close()
    except RecipeError as error:
        print(f"loop-server: image build failed: {error}", file=err)
        return 1
    say(f"done in {time.monotonic() - started:.1f} s ({recipe_name} recipe)")
    return 0


def _client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as error:
        raise RecipeError(f"no Docker engine answers: {error}") from error
    return client
