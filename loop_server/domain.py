"""The domain model: channels, messages, tasks and their runs as immutable values.

Every layer speaks these types (``api/``, ``services/``, ``events/``, ``protocols``, and the
``store/`` that persists them); this module depends on nothing of the server but
``channel_paths``. Field names follow the SQLite schema (SPEC §7.1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from loop_server.channel_paths import fallback_work_dir


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel or, when ``parent_id`` is set, a thread of one."""

    id: int
    channel_id: str
    guild_id: str
    name: str
    active: bool
    session_id: str
    dir_path: str
    parent_id: str
    platform: str
    permissions: str
    created_at: datetime
    updated_at: datetime

    @property
    def is_thread(self) -> bool:
        return self.parent_id != ""

    def work_dir(self, loop_dir: str) -> str:
        """Where its agents and shells work: its ``dir_path``, else ``<loop dir>/<id>/work``
        (SPEC §3.1 step 7, A.5 step 5) — for a thread, its parent's id: a thread continues its
        parent's conversation (it forks the parent's Claude session, which Claude looks up
        by work dir) about the same files. Without a loop dir, just ``dir_path``. An id that
        is not a plain file name is replaced by a digest (``channel_paths``)."""
        if self.dir_path or not loop_dir:
            return self.dir_path
        return fallback_work_dir(loop_dir, self.parent_id or self.channel_id)


@dataclass(frozen=True, slots=True)
class ChannelUpsert:
    """What ``ChannelRepository.upsert`` writes. Empty platform/session_id/permissions do not
    overwrite stored values (SPEC §7.2)."""

    channel_id: str
    guild_id: str = ""
    name: str = ""
    dir_path: str = ""
    parent_id: str = ""
    platform: str = ""
    session_id: str = ""
    permissions: str = ""
    active: bool = True


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    channel_id: str
    msg_id: str
    author_id: str
    author_name: str
    content: str
    is_bot: bool
    is_processed: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewMessage:
    channel_id: str
    msg_id: str
    author_id: str
    author_name: str
    content: str
    is_bot: bool
    created_at: datetime
    is_processed: bool = False


TASK_TYPES = ("cron", "interval", "once")


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    channel_id: str
    guild_id: str
    schedule: str
    type: str
    prompt: str
    enabled: bool
    next_run_at: datetime
    created_at: datetime
    updated_at: datetime
    template_name: str
    auto_delete_sec: int


@dataclass(frozen=True, slots=True)
class NewTask:
    channel_id: str
    schedule: str
    type: str
    prompt: str
    next_run_at: datetime
    created_at: datetime
    guild_id: str = ""
    enabled: bool = True
    template_name: str = ""
    auto_delete_sec: int = 0


RUN_STATUSES = ("running", "success", "failed", "skipped")


@dataclass(frozen=True, slots=True)
class TaskRun:
    id: int
    task_id: int
    status: str
    response_text: str
    error_text: str
    started_at: datetime
    finished_at: datetime | None
