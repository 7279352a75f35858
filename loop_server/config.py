"""Configuration: flags > ``LOOP_*`` environment > config file > defaults (SPEC A.1).

Every setting is declared once in ``SETTINGS`` with its flag, environment variable and config
file key, so the three sources cannot drift apart and the README table is generated from it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loop_server.hujson import parse_hujson
from loop_server.origin_policy import normalize_host, normalize_origin


class ConfigError(Exception):
    """A setting is missing, malformed or unsafe; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Setting:
    name: str  # attribute of Config
    flag: str | None  # serve flag, e.g. "--addr"
    env: str | None  # environment variable
    key: str  # config file key (upstream's names where upstream has one)
    parse: Callable[[Any], Any]
    help: str


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _positive_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    number = float(value)
    if not number > 0:
        raise ValueError("must be greater than 0")
    return number


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    if isinstance(value, str):
        value = value.strip()
    number = int(value)
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    number = int(value.strip() if isinstance(value, str) else value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _non_negative_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    number = float(value)
    if not number >= 0:
        raise ValueError("must not be negative")
    return number


def _path(value: Any) -> Path:
    # Absolute, so the fallback work dirs under it are absolute wherever the server runs.
    return Path(os.path.abspath(os.path.expanduser(_str(value))))


def _platform(value: Any) -> str:
    text = _str(value)
    if text != "local":
        raise ValueError(f'"{text}" is not supported here (only "local")')
    return text


def _url_of(*schemes: str) -> Callable[[Any], str]:
    """A service URL (``postgresql://…``, ``redis://…``); empty means "not used"."""

    def parse(value: Any) -> str:
        text = _str(value).strip()
        if text and not text.startswith(tuple(f"{scheme}://" for scheme in schemes)):
            raise ValueError(f"must start with {' or '.join(s + '://' for s in schemes)}")
        return text

    return parse


def _instance_id(value: Any) -> str:
    text = _str(value).strip()
    if len(text) > 64 or not all(c.isalnum() or c in "-_." for c in text):
        raise ValueError("must be up to 64 letters, digits, '-', '_' or '.'")
    return text


def _list_of(normalize: Callable[[str], str]) -> Callable[[Any], tuple[str, ...]]:
    """A list setting: a JSON list of strings (config file) or one comma-separated string
    (flag, environment); each item checked by ``normalize``."""

    def parse(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            items = [item for item in value.split(",") if item.strip()]
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            items = value
        else:
            raise ValueError("must be a list of strings or a comma-separated string")
        return tuple(normalize(item) for item in items)

    return parse


SETTINGS: tuple[Setting, ...] = (
    Setting("addr", "--addr", "LOOP_ADDR", "api_addr", _str, "HOST:PORT to listen on"),
    Setting(
        "data_dir",
        "--data-dir",
        "LOOP_DATA_DIR",
        "data_dir",
        _path,
        "database and channel work dirs",
    ),
    Setting(
        "token",
        "--token",
        "LOOP_API_TOKEN",
        "api_token",
        _str,
        "bearer token required on every call (empty: none)",
    ),
    Setting(
        "allowed_origins",
        "--allowed-origins",
        "LOOP_ALLOWED_ORIGINS",
        "allowed_origins",
        _list_of(normalize_origin),
        "web origins besides the server's own whose pages may call it (comma-separated)",
    ),
    Setting(
        "allowed_hosts",
        "--allowed-hosts",
        "LOOP_ALLOWED_HOSTS",
        "allowed_hosts",
        _list_of(normalize_host),
        "Host names besides localhost and loopback IPs served on a loopback bind",
    ),
    Setting(
        "platform",
        "--platform",
        "LOOP_PLATFORM",
        "platform",
        _platform,
        "chat platform of channels created here",
    ),
    Setting(
        "container_image",
        "--container-image",
        "LOOP_CONTAINER_IMAGE",
        "container_image",
        _str,
        "image agent and shell containers run",
    ),
    Setting(
        "claude_bin",
        "--claude-bin",
        "LOOP_CLAUDE_BIN",
        "claude_bin_path",
        _str,
        "the claude binary inside the container",
    ),
    Setting(
        "poll_interval",
        "--poll-interval",
        "LOOP_POLL_INTERVAL",
        "poll_interval_sec",
        _positive_float,
        "seconds between scheduler polls",
    ),
    # Scale-out (docs/scale-out.md): several instances share PostgreSQL and Redis.
    Setting(
        "database_url",
        "--database-url",
        "LOOP_DATABASE_URL",
        "database_url",
        _url_of("postgresql", "postgres"),
        "PostgreSQL to keep state in instead of <data-dir>/loop.db (empty: SQLite)",
    ),
    Setting(
        "redis_url",
        "--redis-url",
        "LOOP_REDIS_URL",
        "redis_url",
        _url_of("redis", "rediss", "unix"),
        "Redis that carries events between instances (empty: this instance only)",
    ),
    Setting(
        "instance_id",
        "--instance-id",
        "LOOP_INSTANCE_ID",
        "instance_id",
        _instance_id,
        "this instance's name among several (empty: host name and process id)",
    ),
    # The agent containers (SPEC A.5 step 5). No flags: these are deployment settings.
    Setting(
        "container_network",
        None,
        "LOOP_CONTAINER_NETWORK",
        "container_network",
        _str,
        "Docker network of agent and shell containers (empty: Docker's default)",
    ),
    Setting(
        "container_memory_mb",
        None,
        "LOOP_CONTAINER_MEMORY_MB",
        "container_memory_mb",
        _non_negative_int,
        "memory limit of agent containers in MiB (0: none)",
    ),
    Setting(
        "container_cpus",
        None,
        "LOOP_CONTAINER_CPUS",
        "container_cpus",
        _non_negative_float,
        "CPU limit of agent containers (0: none)",
    ),
    Setting(
        "container_timeout",
        None,
        "LOOP_CONTAINER_TIMEOUT",
        "container_timeout_sec",
        _positive_float,
        "seconds an agent run may take",
    ),
    Setting(
        "claude_model",
        None,
        "LOOP_CLAUDE_MODEL",
        "claude_model",
        _str,
        "--model for agent runs (empty: claude's default)",
    ),
    Setting(
        "anthropic_api_key",
        None,
        "ANTHROPIC_API_KEY",
        "anthropic_api_key",
        _str,
        "put into agent containers' environment",
    ),
    Setting(
        "claude_code_oauth_token",
        None,
        "CLAUDE_CODE_OAUTH_TOKEN",
        "claude_code_oauth_token",
        _str,
        "put into agent containers' environment",
    ),
    Setting(
        "max_concurrent_runs",
        None,
        "LOOP_MAX_CONCURRENT_RUNS",
        "max_concurrent_runs",
        _positive_int,
        "agent runs at once across channels",
    ),
    Setting(
        "terminal_idle_timeout",
        None,
        "LOOP_TERMINAL_IDLE_TIMEOUT",
        "terminal_idle_timeout_sec",
        _positive_float,
        "seconds a terminal session may go without any viewer before it is ended",
    ),
    Setting(
        "max_body_bytes",
        None,
        "LOOP_MAX_BODY_BYTES",
        "max_body_bytes",
        _positive_int,
        "largest request body accepted (413 above)",
    ),
    Setting(
        "max_ws_message_bytes",
        None,
        "LOOP_MAX_WS_MESSAGE_BYTES",
        "max_ws_message_bytes",
        _positive_int,
        "largest WebSocket message accepted (close 1009 above)",
    ),
    Setting(
        "graceful_timeout",
        None,
        "LOOP_GRACEFUL_TIMEOUT",
        "graceful_timeout_sec",
        _positive_float,
        "seconds shutdown waits for in-flight work",
    ),
    Setting(
        "claude_config_dir",
        None,
        "LOOP_CLAUDE_CONFIG_DIR",
        "claude_config_dir",
        _str,
        "Claude's state dir for every container (default <data-dir>/claude; none: no mount)",
    ),
    Setting(
        "api_socket",
        None,
        "LOOP_API_SOCKET",
        "api_socket",
        _str,
        "unix socket mounted into channel containers for the MCP bridge "
        "(default <data-dir>/run/api.sock; none: no socket)",
    ),
    Setting(
        "http_write_timeout",
        None,
        "LOOP_HTTP_WRITE_TIMEOUT",
        "http_write_timeout_sec",
        _positive_float,
        "seconds an HTTP response may wait on a client that reads nothing before it is closed",
    ),
)


@dataclass(frozen=True, slots=True)
class Config:
    addr: str = "127.0.0.1:8222"
    data_dir: Path = field(default_factory=lambda: Path.home() / ".loop")
    config_file: Path | None = None
    token: str = ""
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    platform: str = "local"
    container_image: str = "loop-agent:latest"
    claude_bin: str = "claude"
    poll_interval: float = 30.0
    database_url: str = ""  # "" = SQLite at db_path
    redis_url: str = ""  # "" = events stay in this process
    instance_id: str = ""  # "" = <hostname>-<pid> (see instance_name)
    container_network: str = ""
    container_memory_mb: int = 0
    container_cpus: float = 0.0
    container_timeout: float = 3600.0
    claude_model: str = ""
    anthropic_api_key: str = ""
    claude_code_oauth_token: str = ""
    max_concurrent_runs: int = 4
    terminal_idle_timeout: float = 1800.0
    max_body_bytes: int = 1024 * 1024
    max_ws_message_bytes: int = 1024 * 1024
    graceful_timeout: float = 10.0
    http_write_timeout: float = 60.0
    claude_config_dir: str = ""  # "" = <data-dir>/claude; "none" = mount nothing
    api_socket: str = ""  # "" = <data-dir>/run/api.sock; "none" = no agent socket
    # Settings only the config file carries (upstream's names), kept for later collaborators.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "loop.db"

    @property
    def instance_name(self) -> str:
        """Who this instance is to the others: in scheduler leases and run records."""
        return self.instance_id or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def claude_dir(self) -> Path | None:
        """Claude's state dir, bind-mounted into every channel container (docs/agent-runs.md)."""
        if self.claude_config_dir == "none":
            return None
        if not self.claude_config_dir:
            return self.data_dir / "claude"
        return Path(os.path.abspath(os.path.expanduser(self.claude_config_dir)))

    @property
    def socket_path(self) -> Path | None:
        """The agent socket the MCP bridge reaches the API through (docs/mcp.md)."""
        if self.api_socket == "none":
            return None
        if not self.api_socket:
            return self.data_dir / "run" / "api.sock"
        return Path(os.path.abspath(os.path.expanduser(self.api_socket)))

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_addr(self.addr)


def parse_addr(addr: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` and ``:PORT`` for all interfaces)."""
    host, sep, port_text = addr.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError(f"invalid address {addr!r}: expected HOST:PORT")
    port = int(port_text)
    if port > 65535:
        raise ConfigError(f"invalid address {addr!r}: port out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # other names may resolve anywhere: treat as exposed


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = parse_hujson(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"reading config file {path}: {err.strerror or err}") from err
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return data


def load_config(
    flags: Mapping[str, Any], env: Mapping[str, str], *, config_flag: str | None = None
) -> Config:
    """Build the effective configuration. ``flags`` maps setting names to values given on the
    command line (absent or None = not given)."""
    by_name = {s.name: s for s in SETTINGS}

    def source_value(name: str) -> tuple[str | None, Any]:
        """Where a flag or environment value came from (None: neither gave one), and it."""
        setting = by_name[name]
        if flags.get(name) is not None:
            return setting.flag or name, flags[name]
        if setting.env and env.get(setting.env):
            return setting.env, env[setting.env]
        return None, None

    def parse(setting: Setting, value: Any, origin: str) -> Any:
        try:
            return setting.parse(value)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"invalid {origin}: {err}") from err

    # The config file may live in the data dir, so resolve the data dir from flag/env first.
    dir_origin, dir_value = source_value("data_dir")
    data_dir = parse(by_name["data_dir"], dir_value, dir_origin) if dir_origin else None
    file_text = config_flag or env.get("LOOP_CONFIG") or None
    config_file = Path(os.path.expanduser(file_text)) if file_text else None
    if config_file is None:
        candidate = (data_dir or Config().data_dir) / "config.json"
        config_file = candidate if candidate.is_file() else None
    file_values = _read_file(config_file) if config_file else {}

    values: dict[str, Any] = {}
    for setting in SETTINGS:
        origin, value = source_value(setting.name)
        if origin:
            values[setting.name] = parse(setting, value, origin)
        elif setting.key in file_values:
            values[setting.name] = parse(
                setting, file_values[setting.key], f"{setting.key} in {config_file}"
            )
    known = {s.key for s in SETTINGS}
    extra = {k: v for k, v in file_values.items() if k not in known}
    config = replace(Config(), config_file=config_file, extra=extra, **values)
    validate(config)
    return config


def validate(config: Config) -> None:
    if "\x00" in config.claude_config_dir:
        raise ConfigError("invalid claude_config_dir: must not contain NUL bytes")
    host, _ = config.host_port
    if not is_loopback(host) and not config.token:
        shown = host or "all interfaces"
        raise ConfigError(
            f"refusing to listen on {shown} ({config.addr}) without a token: anyone on the "
            "network could run commands in your containers. Set --token / LOOP_API_TOKEN, "
            "or bind 127.0.0.1."
        )
