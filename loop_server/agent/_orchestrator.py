"""The orchestrator behind ``IncomingMessageHandler`` (SPEC A.5).

A user's message is stored first; then a run is queued for its channel. Each channel has a FIFO
queue drained by one worker task, so one channel runs one agent at a time while different
channels run concurrently, bounded by a limiter. Scheduled tasks go through the same queues.
Every run ends in a bot message and an ``agent.status`` — completed, or error with the reason.
With several instances on one database, ``ChannelTurns`` extends "one run at a time, in order"
to every instance (``_turns``).
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field

import trio

from loop_server.agent._command import (
    PROMPT_HISTORY,
    SessionChoice,
    build_prompt,
    choose_session,
)
from loop_server.agent._runner import (
    AgentError,
    AgentRunner,
    RunOutcome,
    RunRequest,
    SessionNotFound,
)
from loop_server.agent._stream import (
    ApiRetry,
    AssistantTurn,
    SessionStarted,
    StreamEvent,
    ToolResult,
    ToolUse,
)
from loop_server.agent._task_threads import EPHEMERAL_INSTRUCTION, TaskThreads, strip_ephemeral
from loop_server.clock import Clock
from loop_server.domain import Message, Task
from loop_server.protocols import EventBroadcaster
from loop_server.services.channels import ChannelSessions
from loop_server.services.messages import MessageService
from loop_server.services.turns import ChannelTurns
from loop_server.store import Store

log = logging.getLogger(__name__)

STOPPED = "stopped"
STOPPED_TEXT = "Run stopped."


@dataclass
class _Job:
    channel_id: str
    message: Message | None = None  # a chat run answers this message
    task: Task | None = None  # a scheduled run executes this task's prompt
    done: trio.Event = field(default_factory=trio.Event)
    response: str = ""
    error: str = ""
    ephemeral: bool = False  # a scheduled run's answer said [EPHEMERAL]
    ticket: int = 0  # its place among the channel's runs on every instance (0: one instance)

    @property
    def may_be_ephemeral(self) -> bool:
        return self.task is not None and self.task.auto_delete_sec > 0


class Orchestrator:
    def __init__(
        self,
        store: Store,
        messages: MessageService,
        runner: AgentRunner,
        broadcaster: EventBroadcaster | None,
        *,
        clock: Clock,
        loop_dir: str,
        max_concurrent_runs: int = 4,
        task_threads: TaskThreads | None = None,
        turns: ChannelTurns | None = None,
    ) -> None:
        self._store = store  # read only: the session write goes through ``self._sessions``
        self._sessions = ChannelSessions(store, clock=clock)
        self._messages = messages
        self._runner = runner
        self._broadcaster = broadcaster
        self._clock = clock
        self._loop_dir = loop_dir
        self._task_threads = task_threads  # None: scheduled runs answer in the channel
        self._limiter = trio.CapacityLimiter(max_concurrent_runs)
        self._turns = turns  # None: this is the only instance
        self._queues: dict[str, collections.deque[_Job]] = {}
        # Per channel: taking a ticket and queueing its job happen under one lock, so this
        # instance queues a channel's jobs in ticket order (see _queue_with_ticket).
        self._ticket_locks: dict[str, trio.Lock] = {}
        self._running: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        self._idle = trio.Event()
        self._idle.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the channel workers until cancelled (shutdown stops every run)."""
        if self._turns is not None:
            await self._turns.forget_earlier_life()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    # -- IncomingMessageHandler -----------------------------------------------------------

    async def handle_incoming_message(self, channel_id: str, author_id: str, content: str) -> None:
        message = await self._messages.record_user_message(channel_id, author_id, content)
        await self._queue_with_ticket(_Job(channel_id, message=message))

    # -- TaskExecutor (the scheduler's) ---------------------------------------------------

    async def execute(self, task: Task) -> str:
        """Run the task's prompt; it answers in a thread of its own (🧵, ``_task_threads``)."""
        thread_id = await self._task_threads.open(task) if self._task_threads else ""
        channel_id = thread_id or task.channel_id
        job = _Job(channel_id, task=task)
        await self._queue_with_ticket(job)
        await job.done.wait()
        if job.error:
            raise AgentError(job.error)
        return job.response

    # -- ActiveChatLister and stop --------------------------------------------------------

    def active_chat_channel_ids(self) -> set[str]:
        return set(self._running)

    def stop(self, channel_id: str) -> bool:
        """Cancel the channel's current run; False when nothing runs there."""
        scope = self._running.get(channel_id)
        if scope is None:
            return False
        scope.cancel()
        return True

    def queued(self, channel_id: str) -> int:
        queue = self._queues.get(channel_id)
        return len(queue) if queue else 0

    async def wait_idle(self) -> None:
        """Return once no run is queued or running (tests, graceful shutdown)."""
        while self._queues:
            await self._idle.wait()

    # -- workers --------------------------------------------------------------------------

    async def _queue_with_ticket(self, job: _Job) -> None:
        """Take the job's ticket and queue it, in one step for this instance.

        Why the lock: two requests for one channel that took tickets 1 and 4 could otherwise
        queue 4 first. The channel's worker would then wait for ticket 4's turn while ticket 1,
        queued behind it in the same queue, never ran: a deadlock of the channel on every
        instance (seen as a flaky three-instance test)."""
        if self._turns is None:
            self._enqueue(job)
            return
        channel_id = job.channel_id
        lock = self._ticket_locks.setdefault(channel_id, trio.Lock())
        try:
            async with lock:
                job.ticket = await self._turns.take(channel_id)
                self._enqueue(job)
        finally:
            # Only this lock, and only when nobody holds or waits for it: a lock that was
            # replaced meanwhile belongs to other callers.
            idle = not lock.locked() and lock.statistics().tasks_waiting == 0
            if idle and self._ticket_locks.get(channel_id) is lock:
                del self._ticket_locks[channel_id]

    def _enqueue(self, job: _Job) -> None:
        if self._nursery is None:
            raise RuntimeError("orchestrator is not running")
        queue = self._queues.get(job.channel_id)
        if queue is None:
            queue = self._queues[job.channel_id] = collections.deque()
            if self._idle.is_set():
                self._idle = trio.Event()
            self._nursery.start_soon(self._drain, job.channel_id, name=f"channel-{job.channel_id}")
        queue.append(job)

    async def _drain(self, channel_id: str) -> None:
        queue = self._queues[channel_id]
        try:
            while queue:
                job = queue.popleft()
                try:
                    if self._turns is not None and job.ticket:
                        await self._turns.wait(channel_id, job.ticket)
                    async with self._limiter:
                        await self._run_job(job)
                finally:
                    if self._turns is not None and job.ticket:
                        await self._turns.release(job.ticket)
        finally:
            # No await between the last emptiness check and this: a job enqueued meanwhile
            # would have found the queue and be run by this loop.
            self._queues.pop(channel_id, None)
            if not self._queues:
                self._idle.set()
            for job in queue:  # only on cancellation: nobody will run these
                job.error = STOPPED
                job.done.set()
            if self._turns is not None:
                for job in queue:
                    if job.ticket:
                        await self._turns.release(job.ticket)

    async def _run_job(self, job: _Job) -> None:
        channel_id = job.channel_id
        scope = trio.CancelScope()
        self._running[channel_id] = scope
        self._status(channel_id, "running")
        try:
            with scope:
                outcome = await self._run_agent(job)
            if scope.cancelled_caught:
                await self._stopped(job)
                return
            answer = outcome.text
            if job.may_be_ephemeral:
                answer, job.ephemeral = strip_ephemeral(answer)
            text = answer or "(the agent returned no text)"
            await self._messages.post_message(channel_id, text)
            job.response = answer
            if job.ephemeral:
                await self._expire_thread(job)
            self._status(channel_id, "completed")
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await self._stopped(job)
            raise
        except AgentError as err:
            await self._failed(job, str(err))
        except Exception as err:
            log.exception("agent run in %s failed", channel_id)
            await self._failed(job, f"internal error: {err}")
        finally:
            self._running.pop(channel_id, None)
            job.done.set()

    async def _run_agent(self, job: _Job) -> RunOutcome:
        channel = await self._store.channels.get(job.channel_id)
        if channel is None:
            raise AgentError(f"channel {job.channel_id} not found")
        work_dir = channel.work_dir(self._loop_dir)
        system_prompt = EPHEMERAL_INSTRUCTION if job.may_be_ephemeral else ""
        if job.task is not None:
            # Scheduled runs start fresh: they must not fork or advance the chat's session.
            session, prompt = SessionChoice(), job.task.prompt
        else:
            assert job.message is not None
            parent_session: str | None = None
            if channel.is_thread:
                parent = await self._store.channels.get(channel.parent_id)
                parent_session = parent.session_id if parent is not None else ""
            session = choose_session(channel.session_id, parent_session)
            prompt = await self._chat_prompt(job.channel_id, job.message, session)

        on_event = _EventRelay(
            job.channel_id, self._broadcaster, strip_ephemeral=job.may_be_ephemeral
        )
        try:
            outcome = await self._runner.run(
                RunRequest(job.channel_id, work_dir, prompt, session, system_prompt),
                on_event=on_event,
            )
        except SessionNotFound as err:
            # The stored session is gone for good; failing every later message of the channel
            # the same way would help nobody. Start over with the history as context, as a
            # channel's first run does (the new session id is stored below).
            assert job.message is not None  # scheduled runs never resume
            log.warning(
                "agent run in %s: session %s not found (%s); starting a new session",
                job.channel_id,
                session.session_id,
                err,
            )
            session = SessionChoice()
            prompt = await self._chat_prompt(job.channel_id, job.message, session)
            outcome = await self._runner.run(
                RunRequest(job.channel_id, work_dir, prompt, session, system_prompt),
                on_event=on_event,
            )
        if job.task is None and outcome.session_id:
            await self._sessions.record(job.channel_id, outcome.session_id)
        return outcome

    async def _expire_thread(self, job: _Job) -> None:
        """An ephemeral answer's thread turns 💨 before the run is reported completed, so a
        client that lists channels on ``completed`` sees the new name."""
        task = job.task
        if task is None or self._task_threads is None or job.channel_id == task.channel_id:
            return  # no thread of its own (it could not be made): nothing to expire
        await self._task_threads.expire(job.channel_id, task)

    async def _chat_prompt(self, channel_id: str, message: Message, session: SessionChoice) -> str:
        """With a session, only the new message; without, the recent history too (A.5 step 4)."""
        has_session = bool(session.session_id)
        history: list[Message] = []
        if not has_session:
            history = await self._store.messages.recent(channel_id, PROMPT_HISTORY)
        return build_prompt(message, history, has_session=has_session)

    async def _stopped(self, job: _Job) -> None:
        job.error = STOPPED
        await self._post_quietly(job.channel_id, STOPPED_TEXT)
        self._status(job.channel_id, "error", STOPPED)

    async def _failed(self, job: _Job, error: str) -> None:
        job.error = error
        await self._post_quietly(job.channel_id, f"⚠️ Agent run failed: {error}")
        self._status(job.channel_id, "error", error)

    async def _post_quietly(self, channel_id: str, text: str) -> None:
        try:
            await self._messages.post_message(channel_id, text)
        except Exception:
            log.exception("posting to %s failed", channel_id)

    def _status(self, channel_id: str, status: str, error: str = "") -> None:
        if self._broadcaster is not None:
            self._broadcaster.broadcast_agent_status(channel_id, status, error)


class _EventRelay:
    """Turns one run's stream events into the live events UIs show (docs/events.md):
    ``message.streaming`` for each assistant text turn, ``tool.use`` for each tool call, and
    ``agent.activity`` for what the agent is waiting on (the model, or an API retry).
    ``strip_ephemeral``: a scheduled run that may answer ``[EPHEMERAL]`` streams its text
    without the marker, as its final answer is posted."""

    def __init__(
        self,
        channel_id: str,
        broadcaster: EventBroadcaster | None,
        *,
        strip_ephemeral: bool = False,
    ) -> None:
        self._channel_id = channel_id
        self._broadcaster = broadcaster
        self._strip_ephemeral = strip_ephemeral
        self._model = ""

    def __call__(self, event: StreamEvent) -> None:
        out = self._broadcaster
        if out is None:
            return
        channel = self._channel_id
        if isinstance(event, AssistantTurn):
            text = strip_ephemeral(event.text)[0] if self._strip_ephemeral else event.text
            out.broadcast_message_streaming(channel, text)
        elif isinstance(event, ToolUse):
            out.broadcast_tool_use(channel, event.name, event.summary, event.tool_use_id)
        elif isinstance(event, SessionStarted):
            self._model = event.model
            out.broadcast_agent_activity(channel, "model", self._model)
        elif isinstance(event, ToolResult):
            # The tool's result goes back to the model: the agent waits on it again.
            out.broadcast_agent_activity(channel, "model", self._model)
        elif isinstance(event, ApiRetry):
            out.broadcast_agent_activity(
                channel, "api_retry", self._model, retry_description(event)
            )


def retry_description(retry: ApiRetry) -> str:
    status = f"API error {retry.status}" if retry.status else "API connection error"
    name = f" ({retry.error})" if retry.error else ""
    return (
        f"{status}{name}; retrying in {retry.delay_ms / 1000:.1f} s "
        f"(attempt {retry.attempt} of {retry.max_retries})"
    )
