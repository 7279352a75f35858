"""Task run logs (SPEC §7.1 task_run_logs, §8.4, A.4 run history)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from loop_server.domain import Task, TaskRun
from loop_server.store._sql import KEYED_ROWS, SqlConnection, StoreDatabase
from loop_server.store.tasks import TASK_COLUMNS, task_from_row
from loop_server.timefmt import from_db, to_db

#: What a finished run does to its task, decided from the task as it is then (it may have been
#: edited while the run went on): ``(next_run_at, enabled)``, or None to leave it as it is.
Reschedule = Callable[[Task], "tuple[datetime, bool] | None"]

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

    def _lock(self) -> str:
        # PostgreSQL: the task row is the lease's lock. A claim that finds it locked (another
        # instance claiming or finishing that task) skips it instead of waiting; SQLite has a
        # single writer, so its transactions are already serial.
        return " FOR UPDATE SKIP LOCKED" if self._db.dialect == "postgres" else ""

    async def start(
        self, task_id: int, started_at: datetime, status: str = "running", instance_id: str = ""
    ) -> int:
        """Record a run; return its id. ``ConstraintViolation`` if the task does not exist, or
        if ``status`` is running and the task already has a running run (on any instance)."""

        def insert(conn: SqlConnection) -> int:
            cur = conn.execute(
                "INSERT INTO task_run_logs (task_id, status, started_at, instance_id)"
                " VALUES (?, ?, ?, ?) RETURNING id",
                (task_id, status, to_db(started_at), instance_id),
            )
            new_id: int = cur.fetchone()[0]
            return new_id

        return await self._db.write(insert, keyed=True)

    async def claim_due(
        self, task_ids: Sequence[int], now: datetime, instance_id: str
    ) -> list[tuple[int, int]]:
        """Start a run, owned by ``instance_id``, of each task that is still due at ``now`` and
        has no running run anywhere; return ``(task_id, run_id)`` of those claimed, in order.

        Exactly one of several instances polling at once claims a task: the task row is
        locked (PostgreSQL) or the writer is single (SQLite) while it is checked, and the unique
        index on running runs refuses a second running row whatever happens in between.
        """
        when = to_db(now)
        lock = self._lock()

        def claim(conn: SqlConnection) -> list[tuple[int, int]]:
            claimed = []
            for task_id in task_ids:
                due = conn.execute(
                    "SELECT id FROM scheduled_tasks WHERE id = ? AND enabled = 1"
                    f" AND next_run_at <= ?{lock}",
                    (task_id, when),
                ).fetchone()
                if due is None:
                    continue  # finished, edited, deleted, or being claimed elsewhere
                row = conn.execute(
                    "INSERT INTO task_run_logs (task_id, status, started_at, instance_id)"
                    " VALUES (?, 'running', ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                    (task_id, when, instance_id),
                ).fetchone()
                if row is not None:
                    claimed.append((task_id, int(row[0])))
            return claimed

        return await self._db.write(claim)

    async def finish_and_reschedule(
        self,
        run_id: int,
        task_id: int,
        outcome: tuple[str, str, str],
        finished_at: datetime,
        reschedule: Reschedule | None,
    ) -> bool:
        """Record how a run ended (``outcome`` = status, response, error) and, unless
        ``reschedule`` is None, move its task on, in one transaction: no other instance can
        see the run ended while the task still shows the occurrence that started it (it would
        run it again). False if the run does not exist."""
        status, response_text, error_text = outcome
        when = to_db(finished_at)
        lock = " FOR UPDATE" if self._db.dialect == "postgres" else ""

        def finish(conn: SqlConnection) -> bool:
            task_row = conn.execute(
                f"SELECT {TASK_COLUMNS} FROM scheduled_tasks WHERE id = ?{lock}", (task_id,)
            ).fetchone()
            cur = conn.execute(
                "UPDATE task_run_logs SET status = ?, response_text = ?, error_text = ?,"
                " finished_at = ? WHERE id = ?",
                (status, response_text, error_text, when, run_id),
            )
            if task_row is not None and reschedule is not None:
                following = reschedule(task_from_row(task_row))
                if following is not None:
                    next_run_at, enabled = following
                    conn.execute(
                        "UPDATE scheduled_tasks SET next_run_at = ?, enabled = ?, updated_at = ?"
                        " WHERE id = ?",
                        (to_db(next_run_at), int(enabled), when, task_id),
                    )
            return cur.rowcount > 0

        return await self._db.write(finish, keyed=True)

    async def heartbeat(self, instance_id: str, now: datetime) -> None:
        """Say that ``instance_id`` is alive (the scheduler calls it on every poll)."""
        when = to_db(now)
        await self._db.write(
            lambda conn: conn.execute(
                "INSERT INTO scheduler_instances (instance_id, started_at, heartbeat_at)"
                " VALUES (?, ?, ?) ON CONFLICT (instance_id)"
                " DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                (instance_id, when, when),
            )
        )

    async def close_orphaned(
        self,
        stale_before: datetime,
        now: datetime,
        error_text: str,
        *,
        own: str | None = None,
        alive: str | None = None,
    ) -> int:
        """Mark ``failed`` the running runs of instances that are gone: those whose last
        heartbeat is older than ``stale_before`` or that never sent one, and with ``own``, that
        instance's runs from an earlier life (at its start-up). The runs of ``alive`` (the
        caller, running) are kept whatever its heartbeat says. Returns how many."""
        gone = (
            "instance_id NOT IN"
            " (SELECT instance_id FROM scheduler_instances WHERE heartbeat_at >= ?)"
        )
        params: list[object] = [error_text, to_db(now), to_db(stale_before)]
        if own is not None:
            gone = f"(instance_id = ? OR {gone})"
            params.insert(2, own)
        if alive is not None:
            gone += " AND instance_id <> ?"
            params.append(alive)

        def update(conn: SqlConnection) -> int:
            cur = conn.execute(
                "UPDATE task_run_logs SET status = 'failed', error_text = ?, finished_at = ?"
                f" WHERE status = 'running' AND {gone}",
                params,
            )
            return cur.rowcount

        return await self._db.write(update)

    async def close_own(self, instance_id: str, now: datetime, error_text: str) -> int:
        """Mark ``failed`` the running runs of ``instance_id`` (its shutdown)."""

        def update(conn: SqlConnection) -> int:
            cur = conn.execute(
                "UPDATE task_run_logs SET status = 'failed', error_text = ?, finished_at = ?"
                " WHERE status = 'running' AND instance_id = ?",
                (error_text, to_db(now), instance_id),
            )
            return cur.rowcount

        return await self._db.write(update)

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

        return await self._db.read(query, keyed=True)

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

        return await self._db.read(query, keyed=limit <= KEYED_ROWS)

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
