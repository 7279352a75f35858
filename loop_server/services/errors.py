"""Service errors whose text is what upstream's handlers put in a 500 body."""

from __future__ import annotations


class ServiceError(Exception):
    """An operation failed; ``str(err)`` is the client-facing text, e.g.
    ``creating channel: ...``."""


class NotFound(ServiceError):
    """The thing named does not exist (answered 404 with the text)."""


class Invalid(ServiceError):
    """The request cannot be done to this thing (answered 400 with the text)."""


class TaskNotFound(NotFound):
    def __init__(self, task_id: int) -> None:
        super().__init__(f"task {task_id} not found")
        self.task_id = task_id


class TaskAlreadyRunning(ServiceError):
    def __init__(self, task_id: int) -> None:
        super().__init__("task is already running")
        self.task_id = task_id
