"""Global events: upstream's names and payloads for things every UI lists.

They reach every subscription, whatever its channel filter, because a UI that watches one
channel still shows the channel list, the task list and the containers. Upstream's shapes:

* ``channel.created``: envelope ``channel_id`` = the parent (``""`` for a top-level channel),
  ``data`` = ``{"channel_id": <the new id>}``;
* ``channel.deleted``: envelope ``channel_id`` = the deleted channel, ``data`` = ``null``;
* ``task.created`` / ``task.updated`` / ``task.deleted``: ``{"task_id", "channel_id"}``;
* ``task.run_completed``: ``{"task_id", "run_id", "status", "channel_id"}``;
* ``container.status_changed``: envelope ``channel_id`` = ``""``, ``data`` =
  ``{"container_id", "channel_id", "type", "status", "container_name"}``.
"""

from __future__ import annotations

CHANNEL_CREATED = "channel.created"
CHANNEL_DELETED = "channel.deleted"
TASK_CREATED = "task.created"
TASK_UPDATED = "task.updated"
TASK_DELETED = "task.deleted"
TASK_RUN_COMPLETED = "task.run_completed"
CONTAINER_STATUS_CHANGED = "container.status_changed"


def task_data(task_id: int, channel_id: str) -> dict[str, object]:
    return {"task_id": task_id, "channel_id": channel_id}


def task_run_data(task_id: int, run_id: int, status: str, channel_id: str) -> dict[str, object]:
    return {"task_id": task_id, "run_id": run_id, "status": status, "channel_id": channel_id}


def container_data(
    container_id: str, channel_id: str, kind: str, status: str, name: str
) -> dict[str, object]:
    return {
        "container_id": container_id,
        "channel_id": channel_id,
        "type": kind,
        "status": status,
        "container_name": name,
    }
