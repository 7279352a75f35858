"""Configuration precedence and validation (SPEC A.1, A.2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loop_server.config import Config, ConfigError, is_loopback, load_config, parse_addr


def test_defaults(tmp_path: Path) -> None:
    config = load_config({}, {"LOOP_DATA_DIR": str(tmp_path)})
    assert config.addr == "127.0.0.1:8222"
    assert config.data_dir == tmp_path
    assert config.db_path == tmp_path / "loop.db"
    assert config.token == ""
    assert config.platform == "local"
    assert config.poll_interval == 30.0
    assert config.max_body_bytes == 1024 * 1024
    assert config.config_file is None
    assert Config().data_dir == Path.home() / ".loop"


def test_flag_beats_env_beats_file_beats_default(tmp_path: Path) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(
        """{
          // comments and trailing commas, as in Loop's config.json
          "api_addr": "127.0.0.1:7001",
          "container_image": "from-file:1",
          "claude_bin_path": "/file/claude",
          "poll_interval_sec": 12,
          "templates": [{"name": "x",},],
        }"""
    )
    env = {
        "LOOP_DATA_DIR": str(tmp_path),
        "LOOP_ADDR": "127.0.0.1:7002",
        "LOOP_CONTAINER_IMAGE": "from-env:1",
    }
    config = load_config({"addr": "127.0.0.1:7003"}, env)
    assert config.config_file == config_file  # found in the data dir
    assert config.addr == "127.0.0.1:7003"  # flag
    assert config.container_image == "from-env:1"  # env over file
    assert config.claude_bin == "/file/claude"  # file over default
    assert config.poll_interval == 12.0
    assert config.container_image != Config().container_image
    assert config.extra == {"templates": [{"name": "x"}]}


def test_claude_state_dir(tmp_path: Path) -> None:
    """Where the containers' Claude state lives: <data-dir>/claude unless configured; "none"
    mounts nothing; ~ is expanded and relative paths are made absolute (Docker needs that)."""
    assert load_config({}, {"LOOP_DATA_DIR": str(tmp_path)}).claude_dir == tmp_path / "claude"
    none = load_config({}, {"LOOP_DATA_DIR": str(tmp_path), "LOOP_CLAUDE_CONFIG_DIR": "none"})
    assert none.claude_dir is None
    home = load_config({}, {"LOOP_DATA_DIR": str(tmp_path), "LOOP_CLAUDE_CONFIG_DIR": "~/.claude"})
    assert home.claude_dir == Path.home() / ".claude"
    (tmp_path / "config.json").write_text(json.dumps({"claude_config_dir": "rel/claude"}))
    relative = load_config({}, {"LOOP_DATA_DIR": str(tmp_path)})
    assert relative.claude_dir == Path.cwd() / "rel" / "claude"
    with pytest.raises(ConfigError, match="claude_config_dir"):
        load_config({}, {"LOOP_DATA_DIR": str(tmp_path), "LOOP_CLAUDE_CONFIG_DIR": "/a\x00b"})


def test_agent_container_settings(tmp_path: Path) -> None:
    """SPEC A.5 step 5: the container settings are read from the file and the environment."""
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "container_network": "from-file",
                "container_memory_mb": 512,
                "container_cpus": 1.5,
                "container_timeout_sec": 90,
                "claude_model": "opus",
                "anthropic_api_key": "sk-file",
                "claude_code_oauth_token": "oauth-file",
                "max_concurrent_runs": 2,
            }
        )
    )
    from_file = load_config({}, {"LOOP_DATA_DIR": str(tmp_path)})
    assert (from_file.container_network, from_file.container_memory_mb) == ("from-file", 512)
    assert (from_file.container_cpus, from_file.container_timeout) == (1.5, 90.0)
    assert (from_file.claude_model, from_file.max_concurrent_runs) == ("opus", 2)
    assert (from_file.anthropic_api_key, from_file.claude_code_oauth_token) == (
        "sk-file",
        "oauth-file",
    )
    assert from_file.extra == {}
    env = {
        "LOOP_DATA_DIR": str(tmp_path),
        "LOOP_CONTAINER_NETWORK": "none",
        "LOOP_CONTAINER_TIMEOUT": "5",
        "ANTHROPIC_API_KEY": "sk-env",
    }
    from_env = load_config({}, env)
    assert (from_env.container_network, from_env.container_timeout) == ("none", 5.0)
    assert from_env.anthropic_api_key == "sk-env"
    assert from_env.container_memory_mb == 512  # the file still supplies the rest


def test_explicit_config_file(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.json"
    other.write_text(json.dumps({"api_token": "t0k"}))
    config = load_config({"data_dir": str(tmp_path / "d")}, {"LOOP_CONFIG": str(other)})
    assert config.token == "t0k"
    flagged = load_config({}, {}, config_flag=str(other))
    assert flagged.config_file == other


@pytest.mark.parametrize(
    ("flags", "env", "fragment"),
    [
        ({"addr": "0.0.0.0:8222"}, {}, "refusing to listen on 0.0.0.0"),
        ({"addr": ":8222"}, {}, "refusing to listen on all interfaces"),
        ({"addr": "example.com:80"}, {}, "refusing to listen on example.com"),
        ({"addr": "nonsense"}, {}, "expected HOST:PORT"),
        ({"addr": "127.0.0.1:70000"}, {}, "port out of range"),
        ({"poll_interval": "0"}, {}, "--poll-interval: must be greater than 0"),
        ({"poll_interval": "soon"}, {}, "--poll-interval"),
        ({}, {"LOOP_PLATFORM": "discord"}, 'LOOP_PLATFORM: "discord" is not supported'),
        ({}, {"LOOP_MAX_BODY_BYTES": "-1"}, "LOOP_MAX_BODY_BYTES"),
        ({}, {"LOOP_CONTAINER_MEMORY_MB": "-1"}, "LOOP_CONTAINER_MEMORY_MB: must not be"),
        ({}, {"LOOP_CONTAINER_TIMEOUT": "0"}, "LOOP_CONTAINER_TIMEOUT: must be greater"),
        ({}, {"LOOP_MAX_CONCURRENT_RUNS": "0"}, "LOOP_MAX_CONCURRENT_RUNS"),
    ],
)
def test_invalid_settings_are_refused(
    tmp_path: Path, flags: dict[str, str], env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        load_config(flags, {"LOOP_DATA_DIR": str(tmp_path), **env})


def test_non_loopback_allowed_with_token(tmp_path: Path) -> None:
    config = load_config({"addr": "0.0.0.0:8222", "token": "x"}, {"LOOP_DATA_DIR": str(tmp_path)})
    assert config.host_port == ("0.0.0.0", 8222)


def test_bad_config_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_config({}, {}, config_flag=str(broken))
    listing = tmp_path / "list.json"
    listing.write_text("[]")
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        load_config({}, {}, config_flag=str(listing))
    with pytest.raises(ConfigError, match="reading config file"):
        load_config({}, {}, config_flag=str(tmp_path / "missing.json"))
    typed = tmp_path / "typed.json"
    typed.write_text('{"poll_interval_sec": "often"}')
    with pytest.raises(ConfigError, match="poll_interval_sec in"):
        load_config({}, {}, config_flag=str(typed))


def test_address_helpers() -> None:
    assert parse_addr("[::1]:8222") == ("::1", 8222)
    assert parse_addr(":9") == ("", 9)
    assert is_loopback("127.0.0.2")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("")
    assert not is_loopback("10.0.0.1")
