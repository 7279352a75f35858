"""The composition root: builds every collaborator from the config and owns their lifetimes."""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from loop_server import __version__
from loop_server.access import AgentTokens
from loop_server.agent import AgentRunner, AgentSettings, Orchestrator, TaskThreads
from loop_server.api import ASGIApp, events_authorizer
from loop_server.api.app import create_app
from loop_server.api.deps import ApiDeps
from loop_server.clock import Clock, SystemClock
from loop_server.commands import (
    CommandHandler,
    CommandsConfig,
    CommandsConfigError,
)
from loop_server.config import Config, is_loopback
from loop_server.console_assets import ConsoleAssets
from loop_server.containers import (
    ChannelContainers,
    ContainerEnvError,
    ContainerSettings,
    ContainerWatcher,
    DockerEngine,
    DockerExec,
    ImageChecker,
    RunningChannels,
    host_user_env,
    parse_container_env,
)
from loop_server.events import EventsHub, RedisRelay, RelayUnavailable, open_redis_relay
from loop_server.memory import (
    MemoryConfig,
    MemoryConfigError,
    MultiPathIndexer,
    channel_work_dirs,
    open_memory_indexer,
    reindex_forever,
)
from loop_server.origin_policy import OriginPolicy
from loop_server.platform.local import LocalPlatform
from loop_server.scheduler import Scheduler, TaskExecutor, lease_seconds
from loop_server.services.channels import ChannelService, StoreChannelGrants, StoreChannelLister
from loop_server.services.git import GitBranchReader
from loop_server.services.messages import MessageService
from loop_server.services.tasks import TaskService
from loop_server.services.threads import ThreadService
from loop_server.services.turns import ChannelTurns
from loop_server.serving import (
    EventsEndpoint,
    ListenError,
    SocketPathError,
    TerminalEndpoint,
    bind_socket,
    bind_unix_socket,
    listening_url,
    remove_socket_file,
    serve_api,
)
from loop_server.store import Database, Store, StoreError, open_store, store_location
from loop_server.terminal import InteractiveCommands, SessionManager

log = logging.getLogger("loop_server")


class StartupError(Exception):
    """The server cannot start; the message says why (printed by the CLI, exit 1)."""


def _channel_turns(config: Config, store: Store, clock: Clock) -> ChannelTurns | None:
    """Among several instances on one database, a channel's runs wait their turn across all
    of them (docs/scale-out.md); alone, the orchestrator's own queue is enough."""
    if not config.database_url:
        return None
    return ChannelTurns(
        store.turns,
        instance_id=config.instance_name,
        clock=clock,
        lease_seconds=lease_seconds(config.poll_interval),
    )


async def _memory_database(
    config: Config, memory_config: MemoryConfig, store: Store
) -> Database | None:
    """Where the memory index lives: SQLite FTS5 tables, beside the store's on SQLite. On
    PostgreSQL they go in a file of the instance's own (``<data-dir>/memory.db``): memory
    indexes the files on this instance's machine, so its index is this instance's too."""
    if not memory_config.enabled:
        return None
    if isinstance(store.db, Database):
        return store.db
    try:
        return await Database.open(config.data_dir / "memory.db")
    except StoreError as err:
        log.error("memory disabled: %s", err)
        return None


def _flat_fields(snapshot: Any) -> dict[str, Any]:
    """A statistics dataclass of plain values as a dict. ``dataclasses.asdict`` deep-copies,
    which cost ~10 µs per snapshot on every ``/api/health``, a hot route."""
    return {name: getattr(snapshot, name) for name in snapshot.__dataclass_fields__}


def load_readme() -> str:
    return importlib.resources.files("loop_server").joinpath("README.md").read_text("utf-8")


#: How many request-triggered jobs (slash commands) may run at once; a request that would start
#: one more waits for a slot before it is answered.
BACKGROUND_LIMIT = 32


class Background:
    """Runs request-triggered work that outlives the request, inside a nursery we own.

    Bounded: at most ``limit`` jobs run at once, and ``spawn`` waits for a free slot. Why: the
    request is answered as soon as its job has started (upstream's 204), so without a bound a
    client that keeps posting commands piles up work without limit — memory, and a backlog
    that keeps the CPU busy long after the client stopped (measured: 4 s of commands at 300/s
    listing 5,000 tasks each kept 4 worker threads busy for seconds afterwards, and every other
    route slowed to a sixth). With the bound, a fast client is slowed to the rate the jobs
    really complete at.
    """

    def __init__(self, nursery: trio.Nursery, *, limit: int = BACKGROUND_LIMIT) -> None:
        self._nursery = nursery
        self._slots = trio.CapacityLimiter(limit)

    async def spawn(self, fn: Callable[[], Awaitable[None]], name: str) -> None:
        """Start ``fn`` as soon as a slot is free; returns once it has started."""
        slot = object()
        await self._slots.acquire_on_behalf_of(slot)

        async def guarded() -> None:
            try:
                await fn()
            except Exception:
                # Upstream never reports background failures to the caller; we log them.
                log.exception("background task %s failed", name)
            finally:
                self._slots.release_on_behalf_of(slot)

        try:
            self._nursery.start_soon(guarded, name=name)
        except BaseException:
            self._slots.release_on_behalf_of(slot)
            raise


@dataclass(frozen=True, slots=True)
class Services:
    """The object graph ``_start_services`` built: every long-lived collaborator, typed."""

    app: ASGIApp
    deps: ApiDeps
    hub: EventsHub
    origin_policy: OriginPolicy
    events_endpoint: EventsEndpoint
    terminal_endpoint: TerminalEndpoint
    engine: DockerEngine
    container_watcher: ContainerWatcher
    containers: ChannelContainers
    running_channels: RunningChannels
    agent_tokens: AgentTokens
    messages: MessageService
    tasks: TaskService
    orchestrator: Orchestrator
    scheduler: Scheduler
    commands: CommandHandler
    memory: MultiPathIndexer | None
    terminals: SessionManager


@dataclass
class ServerHandle:
    """What ``run_server`` hands back once it listens: where, the graph, and the off switch."""

    url: str
    host: str
    port: int
    config: Config
    store: Store
    services: Services
    _stop: trio.Event = field(default_factory=trio.Event)

    def shutdown(self) -> None:
        self._stop.set()


def prepare_data_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise StartupError(f"data dir {path} is not usable: {err.strerror or err}") from err


async def run_server(
    config: Config,
    *,
    clock: Clock | None = None,
    executor: TaskExecutor | None = None,
    handle_signals: bool = False,
    task_status: trio.TaskStatus[ServerHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``handle.shutdown()`` (or SIGINT/SIGTERM when ``handle_signals``).

    ``executor`` replaces the agent runner for scheduled tasks (tests of the scheduling API)."""
    clock = clock or SystemClock()
    try:
        memory_config = MemoryConfig.from_extra(config.extra)
        commands_config = CommandsConfig.from_extra(config.extra)
        parse_container_env(config.extra)
    except (MemoryConfigError, CommandsConfigError, ContainerEnvError) as err:
        raise StartupError(f"config: {err}") from err
    prepare_data_dir(config.data_dir)
    host, port = config.host_port
    try:
        sock = bind_socket(host, port, config.addr)
    except ListenError as err:
        raise StartupError(str(err)) from err
    try:
        agent_sock, tokens = await open_agent_access(config)
    except StartupError:
        sock.close()
        raise
    try:
        store = await open_store(database_url=config.database_url, path=config.db_path)
    except Exception as err:
        sock.close()
        if agent_sock is not None:
            agent_sock.close()
        where = store_location(database_url=config.database_url, path=config.db_path)
        raise StartupError(f"opening database {where}: {err}") from err
    engine = DockerEngine()
    # The signal handlers stay ours until the store is closed: a repeated SIGTERM/SIGINT during
    # shutdown (systemd signals every process of a unit; a second Ctrl-C) used to hit the
    # default handler and kill the process before agent containers were removed and jobs
    # recorded (tests/hardening/test_shutdown.py).
    signal_handlers = contextlib.ExitStack()
    # The Redis client outlives the root nursery, so the relay can still publish what is queued
    # when the root is cancelled (docs/events.md, "Across instances"); so does an instance's
    # own memory database on PostgreSQL, which the cancelled watchers may still be using.
    shared_events = contextlib.AsyncExitStack()
    try:
        if handle_signals:
            received = signal_handlers.enter_context(
                trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
            )
        relay = await _open_relay(config, shared_events)
        memory_db = await _memory_database(config, memory_config, store)
        if memory_db is not None and memory_db is not store.db:
            shared_events.push_async_callback(memory_db.close)
        async with trio.open_nursery() as root:
            handle = await _start_services(
                root,
                config,
                clock,
                store,
                engine,
                sock,
                executor,
                memory_config,
                commands_config,
                tokens,
                relay,
                memory_db,
            )
            if handle_signals:
                root.start_soon(_stop_on_signals, handle, received)
            async with trio.open_nursery() as http:
                await http.start(
                    partial(
                        serve_api,
                        handle.services.app,
                        sock,
                        handle.services.events_endpoint,
                        terminal=handle.services.terminal_endpoint,
                        policy=handle.services.origin_policy,
                        agent_sockets=[agent_sock] if agent_sock is not None else [],
                        graceful_timeout=config.graceful_timeout,
                        max_ws_message_bytes=config.max_ws_message_bytes,
                        write_timeout=config.http_write_timeout,
                        shutdown_trigger=handle._stop.wait,
                    )
                )
                log.info("api server started addr=%s version=%s", handle.url, __version__)
                task_status.started(handle)
            # The HTTP server has drained (within graceful_timeout) and closed the event
            # sockets with 1001; cancelling the rest stops agent runs and scheduled jobs,
            # which record how they ended.
            root.cancel_scope.cancel()
    finally:
        # Not shielded: the client's task group was entered outside the shield below, so it must
        # be left outside it too (the relay has flushed by now, in the root nursery).
        await shared_events.aclose()
        with trio.CancelScope(shield=True):
            await store.close()
        engine.close()
        sock.close()
        if agent_sock is not None and config.socket_path is not None:
            agent_sock.close()
            remove_socket_file(config.socket_path)
        signal_handlers.close()


async def open_agent_access(config: Config) -> tuple[socket.socket | None, AgentTokens]:
    """The unix socket channel containers reach the API through, if enabled, and the agent
    tokens of containers made before a restart (docs/mcp.md)."""
    tokens = AgentTokens(config.data_dir / "agent-tokens")
    try:
        await trio.to_thread.run_sync(tokens.load)
    except OSError as err:
        raise StartupError(f"agent tokens in {tokens.directory}: {err.strerror or err}") from err
    if config.socket_path is None:
        return None, tokens
    try:
        return bind_unix_socket(config.socket_path), tokens
    except SocketPathError as err:
        raise StartupError(str(err)) from err


async def _open_relay(config: Config, stack: contextlib.AsyncExitStack) -> RedisRelay | None:
    """The link to the other instances' events, if ``redis_url`` is set. An unreachable Redis
    fails the start-up: the hub's epoch must be the shared one before any client connects."""
    if not config.redis_url:
        return None
    try:
        return await stack.enter_async_context(open_redis_relay(config.redis_url))
    except RelayUnavailable as err:
        raise StartupError(f"events: {err}") from err


async def _start_services(
    root: trio.Nursery,
    config: Config,
    clock: Clock,
    store: Store,
    engine: DockerEngine,
    sock: socket.socket,
    executor: TaskExecutor | None,
    memory_config: MemoryConfig,
    commands_config: CommandsConfig,
    tokens: AgentTokens,
    relay: RedisRelay | None,
    memory_db: Database | None,
) -> ServerHandle:
    """Build the object graph and start the long-lived services in ``root``."""
    hub = EventsHub()
    if relay is not None:
        await root.start(relay.run, hub)
    image_checker = ImageChecker(engine, config.container_image)
    root.start_soon(image_checker.refresh)  # says at start-up what to do when it is missing
    containers = ChannelContainers(engine, container_settings(config, tokens))
    root.start_soon(_prune_agent_tokens, containers)
    running_channels = RunningChannels(engine)
    await root.start(running_channels.run)
    watcher = ContainerWatcher(engine, hub)
    await root.start(watcher.run)
    messages = MessageService(store.messages, hub, clock=clock)
    platform = LocalPlatform()
    threads = ThreadService(store, platform, clock=clock, loop_dir=str(config.data_dir), events=hub)
    task_threads = TaskThreads(threads)
    await root.start(task_threads.run)
    orchestrator = Orchestrator(
        store,
        messages,
        AgentRunner(
            engine, container_settings(config, tokens), agent_settings(config), image=image_checker
        ),
        hub,
        clock=clock,
        loop_dir=str(config.data_dir),
        max_concurrent_runs=config.max_concurrent_runs,
        task_threads=task_threads,
        turns=_channel_turns(config, store, clock),
    )
    await root.start(orchestrator.run)
    scheduler = Scheduler(
        store,
        executor or orchestrator,
        clock=clock,
        poll_interval=config.poll_interval,
        events=hub,
        instance_id=config.instance_name,
    )
    tasks = TaskService(store, clock=clock, events=hub, runner=scheduler)
    readme = load_readme()
    interactions = CommandHandler(
        tasks=tasks,
        replies=messages,
        stop_run=orchestrator.stop,
        readme=readme,
        channels=StoreChannelGrants(store.channels, clock=clock),
        clock=clock,
        templates=commands_config.templates,
        permissions=commands_config.permissions,
    )
    channel_lister = StoreChannelLister(store, events=hub)
    memory = None
    if memory_config.enabled and memory_db is not None:
        try:
            memory = await open_memory_indexer(
                memory_db, memory_config, claude_dir=config.claude_dir
            )
        except StoreError as err:  # e.g. an SQLite without FTS5: serve without memory
            log.error("memory disabled: %s", err)
    terminals = SessionManager(
        DockerExec(engine),
        idle_timeout=config.terminal_idle_timeout,
        # Among several instances a session id says which one holds it (docs/scale-out.md).
        instance=config.instance_name if config.database_url else "",
    )
    await root.start(terminals.run)
    deps = ApiDeps(
        scheduler=tasks,
        background=Background(root),
        readme=readme,
        channels=ChannelService(
            store, platform, guild_id="", platform=config.platform, clock=clock, events=hub
        ),
        threads=threads,
        store=channel_lister,
        messages=messages,
        memory=memory,
        loop_dir=str(config.data_dir),
        platform=config.platform,
        running_channels=running_channels,
        active_chats=orchestrator,
        incoming=orchestrator,
        interactions=interactions,
        branches=GitBranchReader(),
        health=lambda: {
            "events": _flat_fields(hub.statistics()),
            **({"events_relay": _flat_fields(relay.statistics())} if relay else {}),
            "terminals": _flat_fields(terminals.statistics()),
            "agent_image": image_checker.status.as_health(),
            "store": _flat_fields(store.db.statistics()),
        },
        max_body_bytes=config.max_body_bytes,
        console=await trio.to_thread.run_sync(ConsoleAssets.from_package),
    )
    policy = origin_policy(config)
    url, bound_host, bound_port = listening_url(sock)
    handle = ServerHandle(
        url=url,
        host=bound_host,
        port=bound_port,
        config=config,
        store=store,
        services=Services(
            container_watcher=watcher,
            app=create_app(deps, token=config.token, policy=policy, agents=tokens),
            agent_tokens=tokens,
            origin_policy=policy,
            events_endpoint=EventsEndpoint(
                hub,
                events_authorizer(config.token),
                max_message_size=config.max_ws_message_bytes,
                close_timeout=config.graceful_timeout,
            ),
            hub=hub,
            messages=messages,
            tasks=tasks,
            deps=deps,
            engine=engine,
            orchestrator=orchestrator,
            scheduler=scheduler,
            containers=containers,
            running_channels=running_channels,
            memory=memory,
            commands=interactions,
            terminals=terminals,
            terminal_endpoint=TerminalEndpoint(
                terminals,
                events_authorizer(config.token),
                finder=containers,
                stopper=containers,
                channels=channel_lister,
                cmd_builder=InteractiveCommands(
                    loop_dir=str(config.data_dir),
                    claude_bin=config.claude_bin,
                    model=config.claude_model,
                ),
                loop_dir=str(config.data_dir),
                max_message_size=config.max_ws_message_bytes,
                close_timeout=config.graceful_timeout,
            ),
        ),
    )
    await root.start(scheduler.run)
    if memory is not None:
        await root.start(memory.watch)
        await root.start(
            reindex_forever,
            memory,
            partial(channel_work_dirs, channel_lister, str(config.data_dir)),
            memory_config.reindex_interval_sec,
        )
    return handle


def origin_policy(config: Config) -> OriginPolicy:
    """Which browser pages may call this server (docs/operations.md, "Browsers")."""
    return OriginPolicy(
        config.allowed_origins,
        config.allowed_hosts,
        check_host=is_loopback(config.host_port[0]),
    )


def container_settings(config: Config, tokens: AgentTokens | None = None) -> ContainerSettings:
    environment = host_user_env()
    if config.anthropic_api_key:
        environment["ANTHROPIC_API_KEY"] = config.anthropic_api_key
    if config.claude_code_oauth_token:
        environment["CLAUDE_CODE_OAUTH_TOKEN"] = config.claude_code_oauth_token
    # The user's own map last: what they set explicitly wins (validated at start-up).
    environment.update(parse_container_env(config.extra))
    return ContainerSettings(
        image=config.container_image,
        loop_dir=str(config.data_dir),
        network=config.container_network or None,
        memory_mb=config.container_memory_mb,
        cpus=config.container_cpus,
        environment=environment,
        claude_dir=str(config.claude_dir or ""),
        socket_dir=str(config.socket_path.parent) if config.socket_path else "",
        socket_name=config.socket_path.name if config.socket_path else "api.sock",
        tokens=tokens,
    )


def agent_settings(config: Config) -> AgentSettings:
    return AgentSettings(
        claude_bin=config.claude_bin, timeout=config.container_timeout, model=config.claude_model
    )


async def _prune_agent_tokens(containers: ChannelContainers) -> None:
    """Best effort at start-up: without an engine there is nothing to check against."""
    try:
        pruned = await containers.prune_tokens()
    except Exception as err:
        log.info("agent tokens not checked against containers: %s", err)
        return
    if pruned:
        log.info("revoked %d agent tokens of containers that are gone", pruned)


async def _stop_on_signals(handle: ServerHandle, signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        name = signal.Signals(signum).name
        if handle._stop.is_set():
            log.info("received %s again; already shutting down", name)
            continue
        log.info("received %s, shutting down", name)
        handle.shutdown()
