"""Agent runs: Claude in a channel's container, streamed back as events (SPEC A.5)."""

from loop_server.agent._orchestrator import STOPPED, STOPPED_TEXT, Orchestrator
from loop_server.agent._runner import AgentError, AgentRunner, AgentSettings, RunOutcome
from loop_server.agent._task_threads import TaskThreads

__all__ = [
    "STOPPED",
    "STOPPED_TEXT",
    "AgentError",
    "AgentRunner",
    "AgentSettings",
    "Orchestrator",
    "RunOutcome",
    "TaskThreads",
]
