"""Where a scheduled run answers: a thread of its own (🧵), which may expire (💨).

Upstream's behaviour, which clients and users know: each run of a task posts in a new thread of
the task's channel named ``🧵 task #ID (`SCHEDULE`) PROMPT`` (newlines as spaces, cut at 100
characters + ``...``). When the task has ``auto_delete_sec`` > 0 the agent is told to start its
answer with ``[EPHEMERAL]`` when it has nothing meaningful to report; such an answer is posted
without the tag, its thread is renamed with 💨 in place of 🧵, and deleted ``auto_delete_sec``
seconds after the run. Other answers stay.

Pending deletions are tasks in this object's nursery (``run``), so shutdown cancels them; a
thread whose deletion was pending stays after a restart (it is an ordinary thread then).
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio

from loop_server.domain import Task

log = logging.getLogger(__name__)

THREAD_MARK = "🧵"
EPHEMERAL_MARK = "💨"
EPHEMERAL_TAG = "[EPHEMERAL]"
EPHEMERAL_INSTRUCTION = (
    "If you have nothing meaningful to report, start your response with [EPHEMERAL]. "
    "Otherwise respond normally."
)
NAME_LIMIT = 100


class TaskThreadStore(Protocol):
    """The thread operations a task's thread needs (``services.threads.ThreadService``)."""

    async def create_thread(
        self, channel_id: str, name: str, author_id: str, message: str
    ) -> str: ...

    async def rename_thread(self, thread_id: str, name: str) -> None: ...

    async def delete_thread(self, thread_id: str) -> None: ...


def thread_name(task: Task) -> str:
    name = f"{THREAD_MARK} task #{task.id} (`{task.schedule}`) {task.prompt}".replace("\n", " ")
    return name if len(name) <= NAME_LIMIT else name[:NAME_LIMIT] + "..."


def ephemeral_name(name: str) -> str:
    return name.replace(THREAD_MARK, EPHEMERAL_MARK, 1)


def strip_ephemeral(text: str) -> tuple[str, bool]:
    """The answer without the tag, and whether it carried one (anywhere, as upstream)."""
    if EPHEMERAL_TAG not in text:
        return text, False
    return text.replace(EPHEMERAL_TAG, "").strip(), True


class TaskThreads:
    def __init__(self, threads: TaskThreadStore) -> None:
        self._threads = threads
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the pending deletions until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    async def open(self, task: Task) -> str:
        """A new thread for one run of ``task``; "" when it cannot be made (the run then
        answers in the channel itself, as upstream falls back)."""
        try:
            return await self._threads.create_thread(task.channel_id, thread_name(task), "", "")
        except Exception as err:
            log.error("creating the thread of task %d in %s: %s", task.id, task.channel_id, err)
            return ""

    async def expire(self, thread_id: str, task: Task) -> None:
        """Rename the run's thread with 💨 and delete it ``task.auto_delete_sec`` from now."""
        try:
            await self._threads.rename_thread(thread_id, ephemeral_name(thread_name(task)))
        except Exception as err:
            log.error("renaming the ephemeral thread %s of task %d: %s", thread_id, task.id, err)
        if self._nursery is None:
            raise RuntimeError("task threads are not running")
        self._nursery.start_soon(
            self._delete_later, thread_id, task, name=f"expire-thread-{thread_id}"
        )

    async def _delete_later(self, thread_id: str, task: Task) -> None:
        await trio.sleep(task.auto_delete_sec)
        try:
            await self._threads.delete_thread(thread_id)
        except Exception as err:  # deleted by someone meanwhile, say
            log.warning("auto-deleting thread %s of task %d: %s", thread_id, task.id, err)
