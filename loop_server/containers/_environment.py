"""The environment of agent and shell containers: who the agent runs as, its credentials, and
the user's own ``container_env`` map (``ANTHROPIC_BASE_URL``, Bedrock/Vertex settings,
proxies, ``CLAUDE_CODE_*`` switches). Values are secrets as far as we know: they are never
logged (``ContainerSettings`` keeps them out of its repr)."""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from typing import Any

CONTAINER_ENV_KEY = "container_env"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ContainerEnvError(ValueError):
    """``container_env`` in the config file is not a map of names to strings."""


def parse_container_env(extra: Mapping[str, Any]) -> dict[str, str]:
    """``container_env`` of the config file: an object of environment names to strings
    (numbers and booleans are taken as their JSON text, as a user writing ``1`` means)."""
    value = extra.get(CONTAINER_ENV_KEY)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ContainerEnvError(f"{CONTAINER_ENV_KEY} must be an object of NAME: value")
    env: dict[str, str] = {}
    for name, item in value.items():
        if not _NAME.fullmatch(name):
            raise ContainerEnvError(f"{CONTAINER_ENV_KEY}: {name!r} is not an environment name")
        if isinstance(item, bool):
            item = "1" if item else "0"
        elif isinstance(item, int | float):
            item = str(item)
        if not isinstance(item, str) or "\x00" in item:
            raise ContainerEnvError(f"{CONTAINER_ENV_KEY}.{name} must be a string")
        env[name] = item
    return env


def host_user_env() -> dict[str, str]:
    """Who the agent image's entrypoint runs the agent as: this server's user, so files in
    the bind-mounted work dir belong to it (root runs as root, deliberately sandboxed)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    env = {"HOST_UID": str(os.getuid()), "HOST_GID": str(os.getgid())}
    if user:
        env["HOST_USER"] = user
    home = os.path.expanduser("~")
    if home.startswith("/"):
        env["HOME"] = home
    return env
