"""Scheduled tasks (SPEC §3.8–3.12, §7.2, §8).

The store does not validate schedules or compute next runs: the scheduler does that before it
writes. The table's CHECK constraint still refuses an unknown ``type`` (``ConstraintViolation``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from loop_server.domain import NewTask, Task
from loop_server.store._sql import KEYED_ROWS, SqlConnection, StoreDatabase
from loop_server.timefmt import from_db, to_db

_COLUMNS = (
    "id, channel_id, guild_id, schedule, type, prompt, enabled, next_run_at, created_at,"
    " updated_at, template_name, auto_delete_sec"
)
TASK_COLUMNS = _COLUMNS  # for a run's transaction that reads its task (runs.py)


def task_from_row(row: tuple[Any, ...]) -> Task:
    return Task(
        id=row[0],
        channel_id=row[1],
        guild_id=row[2],
        schedule=row[3],
        type=row[4],
        prompt=row[5],
        enabled=bool(row[6]),
        next_run_at=from_db(row[7]),
        created_at=from_db(row[8]),
        updated_at=from_db(row[9]),
        template_name=row[10],
        auto_delete_sec=row[11],
    )


class TaskRepository:
    def __init__(self, db: StoreDatabase) -> None:
        self._db = db

    async def create(self, task: NewTask) -> int:
        """Store a task; return its id. ``updated_at`` starts equal to ``created_at``."""
        created_at = to_db(task.created_at)

        def insert(conn: SqlConnection) -> int:
            cur = conn.execute(
                "INSERT INTO scheduled_tasks (channel_id, guild_id, schedule, type, prompt,"
                " enabled, next_run_at, created_at, updated_at, template_name, auto_delete_sec)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    task.channel_id,
                    task.guild_id,
                    task.schedule,
                    task.type,
                    task.prompt,
                    int(task.enabled),
                    to_db(task.next_run_at),
                    created_at,
                    created_at,
                    task.template_name,
                    task.auto_delete_sec,
                ),
            )
            new_id: int = cur.fetchone()[0]
            return new_id

        return await self._db.write(insert, keyed=True)

    async def get(self, task_id: int) -> Task | None:
        def query(conn: SqlConnection) -> Task | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM scheduled_tasks WHERE id = ?", (task_id,)
            ).fetchone()
            return None if row is None else task_from_row(row)

        return await self._db.read(query, keyed=True)

    async def list_by_channel(self, channel_id: str, now: datetime) -> list[Task]:
        """The channel's tasks by next run, hiding once-tasks whose time has passed (§3.9).

        A channel of at most ``KEYED_ROWS`` tasks (nearly all) is read as a keyed read: a
        range of the ``scheduled_tasks_channel`` index, at most ``KEYED_ROWS`` + 1 rows
        whatever the filter would keep, so no thread hop (each ``tasks`` command lists one).
        A larger channel is read whole in a worker thread."""
        cutoff = to_db(now)
        sql = (
            f"SELECT {_COLUMNS} FROM scheduled_tasks WHERE channel_id = ? ORDER BY next_run_at, id"
        )

        def listed(rows: list[tuple[Any, ...]]) -> list[Task]:
            # Past once-tasks are hidden here, not in SQL: the bounded read must count them.
            return [task_from_row(r) for r in rows if not (r[4] == "once" and r[7] < cutoff)]

        def small(conn: SqlConnection) -> list[Task] | None:
            rows = conn.execute(sql + " LIMIT ?", (channel_id, KEYED_ROWS + 1)).fetchall()
            return listed(rows) if len(rows) <= KEYED_ROWS else None

        tasks = await self._db.read(small, keyed=True)
        if tasks is not None:
            return tasks
        return await self._db.read(lambda conn: listed(conn.execute(sql, (channel_id,)).fetchall()))

    async def update(
        self,
        task_id: int,
        *,
        now: datetime,
        schedule: str | None = None,
        type: str | None = None,
        prompt: str | None = None,
        auto_delete_sec: int | None = None,
        next_run_at: datetime | None = None,
        enabled: bool | None = None,
    ) -> bool:
        """Set the given fields (``None`` = leave as is) and ``updated_at`` in one transaction.

        Returns False if the task does not exist. Raises ``ValueError`` if no field is given:
        an edit that changes nothing is a caller's bug (the API answers 400 before this).
        """
        values: dict[str, object] = {
            "schedule": schedule,
            "type": type,
            "prompt": prompt,
            "auto_delete_sec": auto_delete_sec,
            "next_run_at": None if next_run_at is None else to_db(next_run_at),
            "enabled": None if enabled is None else int(enabled),
        }
        # Column names come from the fixed keys above, never from the caller: safe to format.
        given = {column: value for column, value in values.items() if value is not None}
        if not given:
            raise ValueError("update needs at least one field")
        given["updated_at"] = to_db(now)
        assignments = ", ".join(f"{column} = ?" for column in given)
        sql = f"UPDATE scheduled_tasks SET {assignments} WHERE id = ?"
        params = (*given.values(), task_id)
        return await self._db.write(lambda conn: conn.execute(sql, params).rowcount > 0, keyed=True)

    async def set_enabled(self, task_id: int, enabled: bool, now: datetime) -> bool:
        """Returns False if the task does not exist (the API treats that as success, §3.12)."""
        return await self.update(task_id, enabled=enabled, now=now)

    async def set_next_run(
        self, task_id: int, next_run_at: datetime, enabled: bool, now: datetime
    ) -> bool:
        """Reschedule after a run (once-tasks pass ``enabled=False``, SPEC §8.4)."""
        return await self.update(task_id, next_run_at=next_run_at, enabled=enabled, now=now)

    async def delete(self, task_id: int) -> bool:
        """Delete the task and its run logs; False (not an error) if it does not exist."""

        def delete(conn: SqlConnection) -> bool:
            # Run logs first: task_run_logs.task_id references the task and foreign keys are on.
            conn.execute("DELETE FROM task_run_logs WHERE task_id = ?", (task_id,))
            return conn.execute("DELETE FROM scheduled_tasks WHERE id = ?", (task_id,)).rowcount > 0

        return await self._db.write(delete)

    async def due(self, now: datetime, limit: int | None = None) -> list[Task]:
        """Enabled tasks with ``next_run_at <= now``, earliest first (the scheduler's poll).

        A range scan of ``scheduled_tasks_due`` (enabled, next_run_at, then the rowid), so the
        order needs no sort step and disabled or future tasks are never read.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")

        # No LIMIT clause for "all": SQLite's LIMIT -1 is an error in PostgreSQL.
        bounded = "" if limit is None else f" LIMIT {int(limit)}"

        def query(conn: SqlConnection) -> list[Task]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM scheduled_tasks"
                f" WHERE enabled = 1 AND next_run_at <= ? ORDER BY next_run_at, id{bounded}",
                (to_db(now),),
            )
            return [task_from_row(row) for row in rows]

        return await self._db.read(query)
