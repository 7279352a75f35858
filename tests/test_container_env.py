"""``container_env``: extra environment for agent containers, from the config file."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from loop_server.containers._environment import (
    ContainerEnvError,
    host_user_env,
    parse_container_env,
)
from loop_server.runtime import StartupError, container_settings, run_server
from tests.conftest import make_config


def test_names_to_strings_numbers_and_booleans_as_text() -> None:
    extra = {"container_env": {"ANTHROPIC_BASE_URL": "http://proxy:1", "N": 3, "ON": True}}
    assert parse_container_env(extra) == {
        "ANTHROPIC_BASE_URL": "http://proxy:1",
        "N": "3",
        "ON": "1",
    }
    assert parse_container_env({}) == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["A=1"], "container_env must be an object of NAME: value"),
        ({"A B": "1"}, "container_env: 'A B' is not an environment name"),
        ({"1A": "1"}, "container_env: '1A' is not an environment name"),
        ({"A": None}, "container_env.A must be a string"),
        ({"A": {"x": 1}}, "container_env.A must be a string"),
        ({"A": "a\x00b"}, "container_env.A must be a string"),
    ],
)
def test_bad_maps_are_refused_with_the_reason(value: object, message: str) -> None:
    with pytest.raises(ContainerEnvError) as caught:
        parse_container_env({"container_env": value})
    assert str(caught.value) == message


async def test_the_server_refuses_to_start_with_a_bad_map(tmp_path: Path) -> None:
    config = replace(make_config(tmp_path), extra={"container_env": {"": "x"}})
    with pytest.raises(StartupError) as caught:
        await run_server(config)
    assert str(caught.value) == "config: container_env: '' is not an environment name"


def test_user_map_wins_and_secrets_stay_out_of_the_repr(tmp_path: Path) -> None:
    config = replace(
        make_config(tmp_path, anthropic_api_key="sk-secret-1"),
        extra={"container_env": {"HOME": "/srv/agent", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}},
    )
    settings = container_settings(config)
    assert settings.environment["ANTHROPIC_API_KEY"] == "sk-secret-1"
    assert settings.environment["HOME"] == "/srv/agent"  # the user's choice over ours
    assert settings.environment["HOST_UID"] == str(os.getuid())
    assert "s3cr3t" not in repr(settings) and "sk-secret-1" not in repr(settings)


def test_host_user_is_this_process() -> None:
    env = host_user_env()
    assert (env["HOST_UID"], env["HOST_GID"]) == (str(os.getuid()), str(os.getgid()))
