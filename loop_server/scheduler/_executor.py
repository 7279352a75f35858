"""What a scheduled task runs through: the agent runner (or anything that answers a prompt)."""

from __future__ import annotations

from typing import Protocol

from loop_server.domain import Task


class TaskExecutor(Protocol):
    async def execute(self, task: Task) -> str:
        """Run the task's prompt in its channel; return the response text, raise on failure
        (the exception's text becomes the run's ``error_text``)."""
        ...
