"""The schema, as an ordered list of migrations (SPEC §7.1).

Each migration runs in its own ``BEGIN IMMEDIATE`` transaction together with the insert of its
``schema_migrations`` row, so a crash leaves either all of it or none of it, and two processes
opening the same file at once cannot both apply it (the second waits for the write lock, then
sees the row). Released migrations are never edited: schema changes are appended.

Timestamp columns are TEXT with no SQL default: every writer passes ``timefmt.to_db`` text, whose
fixed width makes string order equal time order. A SQL default (``CURRENT_TIMESTAMP``) would
write another format and silently break those comparisons, so a missing value is an error instead.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from loop_server.store.errors import StoreError
from loop_server.timefmt import to_db


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "channels",
        (
            """
            CREATE TABLE channels (
                id          INTEGER PRIMARY KEY AUTOINCREMENT,
                channel_id  TEXT    NOT NULL UNIQUE,
                guild_id    TEXT    NOT NULL DEFAULT '',
                name        TEXT    NOT NULL DEFAULT '',
                active      INTEGER NOT NULL DEFAULT 1,
                session_id  TEXT    NOT NULL DEFAULT '',
                created_at  TEXT    NOT NULL,
                updated_at  TEXT    NOT NULL,
                dir_path    TEXT    NOT NULL DEFAULT '',
                parent_id   TEXT    NOT NULL DEFAULT '',
                platform    TEXT    NOT NULL DEFAULT '',
                permissions TEXT    NOT NULL DEFAULT ''
            )
            """,
            # One top-level channel per directory per platform; threads share their parent's dir.
            """
            CREATE UNIQUE INDEX channels_dir_path_platform ON channels (dir_path, platform)
                WHERE dir_path != '' AND parent_id = ''
            """,
            # Thread deletion looks children up by parent; most rows are top-level, hence partial.
            "CREATE INDEX channels_parent_id ON channels (parent_id) WHERE parent_id != ''",
        ),
    ),
    Migration(
        2,
        "messages",
        (
            """
            CREATE TABLE messages (
                id           INTEGER PRIMARY KEY AUTOINCREMENT,
                chat_id      INTEGER NOT NULL REFERENCES channels (id),
                channel_id   TEXT    NOT NULL,
                msg_id       TEXT    NOT NULL UNIQUE,
                author_id    TEXT    NOT NULL DEFAULT '',
                author_name  TEXT    NOT NULL DEFAULT '',
                content      TEXT    NOT NULL DEFAULT '',
                is_bot       INTEGER NOT NULL DEFAULT 0,
                is_processed INTEGER NOT NULL DEFAULT 0,
                created_at   TEXT    NOT NULL
            )
            """,
            # History paging (`channel_id = ? AND id < ? ORDER BY id DESC LIMIT n`) is a range
            # scan of this index, so a page costs the same at 10^3 or 10^6 rows.
            "CREATE INDEX messages_channel_id_id ON messages (channel_id, id)",
            # With foreign keys on, deleting a channel row checks messages.chat_id; without an
            # index that check is a full table scan per deleted channel.
            "CREATE INDEX messages_chat_id ON messages (chat_id)",
            "CREATE INDEX messages_is_processed ON messages (is_processed)",
        ),
    ),
    Migration(
        3,
        "scheduled_tasks",
        (
            """
            CREATE TABLE scheduled_tasks (
                id              INTEGER PRIMARY KEY AUTOINCREMENT,
                channel_id      TEXT    NOT NULL,
                guild_id        TEXT    NOT NULL DEFAULT '',
                schedule        TEXT    NOT NULL,
                type            TEXT    NOT NULL CHECK (type IN ('cron', 'interval', 'once')),
                prompt          TEXT    NOT NULL,
                enabled         INTEGER NOT NULL DEFAULT 1,
                next_run_at     TEXT    NOT NULL,
                created_at      TEXT    NOT NULL,
                updated_at      TEXT    NOT NULL,
                template_name   TEXT    NOT NULL DEFAULT '',
                auto_delete_sec INTEGER NOT NULL DEFAULT 0
            )
            """,
            # The scheduler's poll: `enabled = 1 AND next_run_at <= ? ORDER BY next_run_at, id`.
            "CREATE INDEX scheduled_tasks_due ON scheduled_tasks (enabled, next_run_at)",
            # Listing a channel's tasks in next_run_at order without a sort step.
            "CREATE INDEX scheduled_tasks_channel ON scheduled_tasks (channel_id, next_run_at)",
            """
            CREATE TABLE task_run_logs (
                id            INTEGER PRIMARY KEY AUTOINCREMENT,
                task_id       INTEGER NOT NULL REFERENCES scheduled_tasks (id),
                status        TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'success', 'failed', 'skipped')),
                response_text TEXT    NOT NULL DEFAULT '',
                error_text    TEXT    NOT NULL DEFAULT '',
                started_at    TEXT    NOT NULL,
                finished_at   TEXT
            )
            """,
            "CREATE INDEX task_run_logs_task_id_id ON task_run_logs (task_id, id)",
            # Start-up closes runs a crash left open; there are few, so index only those.
            "CREATE INDEX task_run_logs_running ON task_run_logs (status) WHERE status = 'running'",
        ),
    ),
    # Scheduler leases (docs/scale-out.md): several instances may poll one database, so which
    # instance runs a task is recorded, a task has at most one running run (the unique index is
    # what makes a claim exclusive), and instances announce they are alive so the runs of one
    # that died can be closed by the others.
    Migration(
        4,
        "scheduler_lease",
        (
            "ALTER TABLE task_run_logs ADD COLUMN instance_id TEXT NOT NULL DEFAULT ''",
            # Runs left open by an older server would collide with the index below.
            "UPDATE task_run_logs SET status = 'failed', error_text = 'interrupted',"
            " finished_at = started_at WHERE status = 'running'",
            "CREATE UNIQUE INDEX task_run_logs_one_running ON task_run_logs (task_id)"
            " WHERE status = 'running'",
            """
            CREATE TABLE scheduler_instances (
                instance_id  TEXT NOT NULL PRIMARY KEY,
                started_at   TEXT NOT NULL,
                heartbeat_at TEXT NOT NULL
            )
            """,
        ),
    ),
    # Channel turns (docs/scale-out.md): one agent run at a time per channel across instances,
    # in the order the runs were asked for. A run takes a ticket when it is queued and starts
    # when its ticket is the channel's lowest; tickets of instances that died are dropped.
    Migration(
        5,
        "channel_turns",
        (
            """
            CREATE TABLE channel_turns (
                id          INTEGER PRIMARY KEY AUTOINCREMENT,
                channel_id  TEXT NOT NULL,
                instance_id TEXT NOT NULL,
                queued_at   TEXT NOT NULL
            )
            """,
            "CREATE INDEX channel_turns_channel_id_id ON channel_turns (channel_id, id)",
            "CREATE INDEX channel_turns_instance_id ON channel_turns (instance_id)",
        ),
    ),
)


def check_order(migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
    """Versions must start at 1 and increase by one, or "applied" would be ambiguous."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise AssertionError(
                f"migration {migration.name!r} has version {migration.version}, expected {expected}"
            )


def migrate(
    conn: sqlite3.Connection,
    now: datetime,
    migrations: tuple[Migration, ...] = MIGRATIONS,
) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied by this call.

    ``conn`` must be in autocommit mode (``isolation_level=None``): transactions are explicit.
    """
    check_order(migrations)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    newest = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    if newest is not None and newest > len(migrations):
        # Running an older server on a newer file would write rows the newer schema forbids.
        raise StoreError(
            f"database schema version {newest} is newer than this server knows "
            f"({len(migrations)}); upgrade loop-server"
        )
    applied: list[int] = []
    for migration in migrations:
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
            ).fetchone()
            if done is None:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (migration.version, to_db(now)),
                )
                applied.append(migration.version)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(
                    f"migration {migration.version} ({migration.name}) failed: {exc}"
                ) from exc
            raise
    return applied
