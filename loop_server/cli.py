"""The ``loop-server`` command (SPEC A.1)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from functools import partial
from urllib.parse import quote

import trio

from loop_server import __version__
from loop_server.config import SETTINGS, Config, ConfigError, load_config

EXIT_USAGE = 2
EXIT_FAILURE = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loop-server",
        description="The Loop API server: channels, threads, messages, tasks, events and "
        "terminals for Claude Code agents in Docker.",
    )
    parser.add_argument("--version", action="version", version=f"loop-server {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="run the API server", description="Run the API server until SIGINT/SIGTERM."
    )
    serve.add_argument(
        "--config",
        metavar="FILE",
        help="config file (JSON with comments; env LOOP_CONFIG; "
        "default <data-dir>/config.json when present)",
    )
    for setting in SETTINGS:
        if setting.flag is None:
            continue
        serve.add_argument(
            setting.flag,
            dest=setting.name,
            default=None,
            help=f"{setting.help} (env {setting.env}, config key {setting.key})",
        )
    serve.add_argument(
        "--log-level",
        default=os.environ.get("LOOP_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    _add_memory_command(commands)
    _add_mcp_command(commands)
    from loop_server.agent_image import add_image_command

    add_image_command(commands)
    return parser


def _add_mcp_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mcp = commands.add_parser(
        "mcp",
        help="run the MCP bridge for one channel over stdio",
        description="A stdio MCP server whose tools (tasks, threads, messages, memory) act on "
        "this server's API for one channel (docs/mcp.md). Reaches the API over --socket "
        "(inside channel containers) or --api-url.",
    )
    mcp.add_argument("--channel-id", required=True, help="the channel the tools act for")
    mcp.add_argument("--socket", default="", help="the server's unix socket (api.sock)")
    mcp.add_argument(
        "--api-url",
        default="",
        help="the server's base URL when not using --socket (default http://127.0.0.1:8222)",
    )
    mcp.add_argument(
        "--token-file",
        default="",
        help="file holding the bearer token (default: env LOOP_API_TOKEN, or none)",
    )
    mcp.add_argument("--author-id", default="", help="author of channels and threads created")
    mcp.add_argument(
        "--log-level",
        default=os.environ.get("LOOP_LOG_LEVEL", "warning"),
        choices=["debug", "info", "warning", "error"],
    )


def _mcp_main(args: argparse.Namespace) -> int:
    # Logs go to stderr: stdout is the MCP wire.
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from loop_server.bridge import BridgeError, Endpoint, read_token_file, run_bridge

    try:
        token = read_token_file(args.token_file) if args.token_file else ""
    except BridgeError as err:
        print(f"loop-server mcp: {err}", file=sys.stderr)
        return EXIT_FAILURE
    token = token or os.environ.get("LOOP_API_TOKEN", "")
    base_url = args.api_url or ("" if args.socket else "http://127.0.0.1:8222")
    endpoint = Endpoint(socket_path=args.socket, base_url=base_url, token=token)
    with contextlib.suppress(KeyboardInterrupt):
        run_bridge(args.channel_id, endpoint, args.author_id)
    return 0


def _add_memory_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    memory = commands.add_parser(
        "memory", help="project memory (markdown notes)", description="Project memory tools."
    )
    actions = memory.add_subparsers(dest="memory_command", metavar="ACTION", required=True)
    index = actions.add_parser(
        "index",
        help="index a project's memory into the data dir's database",
        description="Index the memory paths of project DIR (its Claude auto-memory dir and "
        "the memory.paths of the global and project configs) and print how many files were "
        "(re)indexed. Shows a progress bar when stderr is a terminal.",
    )
    index.add_argument("dir", metavar="DIR", help="the project directory")
    index.add_argument(
        "--data-dir", default=None, help="data dir holding loop.db (env LOOP_DATA_DIR)"
    )
    index.add_argument("--config", metavar="FILE", help="config file (env LOOP_CONFIG)")
    index.add_argument(
        "--log-level",
        default=os.environ.get("LOOP_LOG_LEVEL", "warning"),
        choices=["debug", "info", "warning", "error"],
    )


def _memory_main(args: argparse.Namespace) -> int:
    # "index" is the only action (argparse refuses a missing or unknown one).
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from loop_server.memory import index_command

    return index_command(
        args.dir,
        data_dir=args.data_dir,
        config_file=args.config,
        env=os.environ,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


def console_url(server_url: str, token: str) -> str:
    """The web console's address; the token goes in the fragment, which browsers never send
    to a server (nor put in a Referer), so it ends up in no request line or access log."""
    fragment = f"#token={quote(token, safe='')}" if token else ""
    return f"{server_url}/{fragment}"


async def _serve(config: Config) -> None:
    from loop_server.runtime import StartupError, run_server

    failed: StartupError | None = None
    async with trio.open_nursery() as nursery:
        try:
            handle = await nursery.start(partial(run_server, config, handle_signals=True))
        except StartupError as err:
            failed = err  # raised bare, not wrapped in the nursery's group
        else:
            # On stdout for the person who ran the command, not in the log (it holds the token).
            print(f"loop-server: console at {console_url(handle.url, config.token)}", flush=True)
    if failed is not None:
        raise failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "memory":
        return _memory_main(args)
    if args.command == "mcp":
        return _mcp_main(args)
    if args.command == "image":
        from loop_server.agent_image import image_main

        return image_main(args)
    if args.command != "serve":
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    flags = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    try:
        config = load_config(flags, os.environ, config_flag=args.config)
    except ConfigError as err:
        print(f"loop-server: {err}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from loop_server.runtime import StartupError

    try:
        trio.run(_serve, config)
    except StartupError as err:
        print(f"loop-server: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        pass
    return 0
