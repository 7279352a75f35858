"""Task run logs (SPEC §7.1 task_run_logs, §8.4, A.4 run history)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from loop_server.domain import TaskRun
from loop_server.store._sql import SqlConnection, StoreDatabase
from loop_server.timefmt import from_db, to_db

_COLUMNS = "id, task_id, status, response_text, error_text, started_at, finished_at"


def run_from_row(row: tuple[Any, ...]) -> TaskRun:
    return TaskRun(
        id=row[0],
        task_id=row[1],
        status=row[2],
        response_text=row[3],
        error_text=row[4],
        started_at=from_db(row[5]),
        finished_at=None if row[6] is None else from_db(row[6]),
    )


class TaskRunRepository:
    def __init__(self, db: StoreDatabase) -> None:
        self._db = db

    async def start(self, task_id: int, started_at: datetime, status: str = "running") -> int:
        """Record a run; return its id. ``ConstraintViolation`` if the task does not exist."""

        def insert(conn: SqlConnection) -> int:
            cur = conn.execute(
                "INSERT INTO task_run_logs (task_id, status, started_at) VALUES (?, ?, ?)"
                " RETURNING id",
                (task_id, status, to_db(started_at)),
            )
            new_id: int = cur.fetchone()[0]
            return new_id

        return await self._db.write(insert)

    async def start_many(self, task_ids: Sequence[int], started_at: datetime) -> list[int]:
        """``start`` for several tasks in one transaction (a poll that finds many tasks due
        pays for one commit, not one per task). Ids come back in the order given."""
        when = to_db(started_at)

        def insert(conn: SqlConnection) -> list[int]:
            ids = []
            for task_id in task_ids:
                cur = conn.execute(
                    "INSERT INTO task_run_logs (task_id, status, started_at)"
                    " VALUES (?, 'running', ?) RETURNING id",
                    (task_id, when),
                )
                ids.append(cur.fetchone()[0])
            return ids

        return await self._db.write(insert)

    async def finish(
        self,
        run_id: int,
        status: str,
        response_text: str,
        error_text: str,
        finished_at: datetime,
    ) -> bool:
        """Record how a run ended; False if the run does not exist."""

        def update(conn: SqlConnection) -> bool:
            cur = conn.execute(
                "UPDATE task_run_logs SET status = ?, response_text = ?, error_text = ?,"
                " finished_at = ? WHERE id = ?",
                (status, response_text, error_text, to_db(finished_at), run_id),
            )
            return cur.rowcount > 0

        return await self._db.write(update)

    async def get(self, run_id: int) -> TaskRun | None:
        def query(conn: SqlConnection) -> TaskRun | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM task_run_logs WHERE id = ?", (run_id,)
            ).fetchone()
            return None if row is None else run_from_row(row)

        return await self._db.read(query)

    async def page(self, task_id: int, cursor: int, limit: int) -> list[TaskRun]:
        """Newest first, with message history's cursor rule (A.4): ``cursor <= 0`` = newest
        page, else runs with ``id < cursor``. A range scan of ``task_run_logs_task_id_id``."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")

        def query(conn: SqlConnection) -> list[TaskRun]:
            if cursor <= 0:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM task_run_logs WHERE task_id = ?"
                    " ORDER BY id DESC LIMIT ?",
                    (task_id, limit),
                )
            else:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM task_run_logs WHERE task_id = ? AND id < ?"
                    " ORDER BY id DESC LIMIT ?",
                    (task_id, cursor, limit),
                )
            return [run_from_row(row) for row in rows]

        return await self._db.read(query)

    async def close_interrupted(self, now: datetime, error_text: str) -> int:
        """Mark every ``running`` run ``failed`` with ``error_text``; return how many.

        Called at start-up (runs a crash left open) and at shutdown (SPEC A.3: cancelled runs
        are recorded failed), so run history never shows a run as running forever.
        """

        def update(conn: SqlConnection) -> int:
            cur = conn.execute(
                "UPDATE task_run_logs SET status = 'failed', error_text = ?, finished_at = ?"
                " WHERE status = 'running'",
                (error_text, to_db(now)),
            )
            return cur.rowcount

        return await self._db.write(update)
