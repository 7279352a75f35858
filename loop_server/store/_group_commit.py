"""Group commit: writes that queue while a commit runs share the next transaction and fsync.

Why: with ``synchronous = FULL`` every COMMIT waits for an fsync of the WAL, and that fsync —
not the SQL — is most of a small write's cost. Writers that arrive while one commit is in
flight wait anyway; taking all of them into the next transaction turns N fsyncs into one and N
thread hops into one, and costs a lone writer nothing (its batch has one job).

Each job of a batch of several runs inside its own SAVEPOINT, so a job that raises is undone
alone and the others in its batch still commit: to a caller a batched write behaves exactly
like a transaction of its own. No result leaves here before the batch's COMMIT has returned
(so the write is durable); if the COMMIT itself fails, every job of the batch gets that error
and nothing of it is stored.

Who commits: the first waiter that finds no commit running takes everything queued and runs it
in a worker thread; everyone else sleeps on an event that fires after each batch. No background
task is needed, so ``Database`` keeps its plain ``open``/``close`` life cycle.

Keyed writes (``write(fn, keyed=True)``: an insert, or an update or upsert of a row by its key)
take microseconds of SQL. A batch of only such writes runs its BEGIN and its jobs on the event
loop's thread and only the COMMIT — the fsync — in a worker thread. Why: run in a worker
thread, each of a batch's statements gives up the GIL and must win it back from the busy event
loop, so under load a batch of 4 inserts took ~2 ms of wall time for 0.4 ms of fsync
(measured on 2 CPUs); on the loop's thread the same statements take ~30 µs each. The inline
BEGIN does not wait for a lock held by another process (the writer's busy timeout is 0 but
around a worker thread's BEGIN): if it meets one, the batch runs the usual way, in a worker
thread that waits ``busy_timeout``.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from loop_server.store.errors import ConstraintViolation, StoreError

QUEUED, RUNNING, DONE = "queued", "running", "done"


def store_error(exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.IntegrityError):
        return ConstraintViolation(str(exc))
    return StoreError(str(exc))


# SQLITE_BUSY and SQLITE_LOCKED, also as extended codes (whose low byte is the primary code).
_LOCK_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def is_lock_error(exc: BaseException | None) -> bool:
    """True if ``exc`` is SQLite saying another connection holds a lock it needs."""
    return isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorcode & 0xFF in _LOCK_CODES


@dataclass(eq=False, slots=True)
class WriteJob:
    fn: Callable[[sqlite3.Connection], Any]
    keyed: bool = False  # small enough to run on the event loop's thread (module doc)
    state: str = QUEUED
    result: Any = None
    error: BaseException | None = None
    # Set when this job's writer may return. Trio resumes tasks woken together in no set order,
    # so a batch's writers would otherwise act on their results (publish an event, answer)
    # in any order; each one lets the next resume only as it returns, so what they do next
    # happens in the order their writes were submitted and committed.
    turn: trio.Event = field(default_factory=trio.Event)
    next: WriteJob | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


@dataclass(slots=True)
class CommitCounters:
    commits: int = 0  # transactions committed (each one fsync with synchronous=FULL)
    writes: int = 0  # jobs acknowledged as committed
    largest_batch: int = 0
    inline_batches: int = 0  # batches whose statements ran on the event loop's thread


def _run_job(conn: sqlite3.Connection, job: WriteJob, *, alone: bool) -> None:
    """Run ``job`` inside the open transaction. ``alone``: it is the transaction's only job,
    so it needs no savepoint (two statements fewer for a lone write): if it raises, the whole
    transaction is rolled back."""
    if not alone:
        conn.execute("SAVEPOINT job")
    try:
        job.result = job.fn(conn)
    except BaseException as exc:
        _set_error(job, exc)
        # An I/O or disk-full error may already have ended the whole transaction.
        if conn.in_transaction:
            if alone:
                conn.execute("ROLLBACK")
            else:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
        return
    if not alone:
        conn.execute("RELEASE job")


def _set_error(job: WriteJob, exc: BaseException) -> None:
    if isinstance(exc, sqlite3.Error):
        job.error = store_error(exc)
        job.error.__cause__ = exc
    else:
        job.error = exc  # the caller's own exception comes out unchanged


def run_batch(conn: sqlite3.Connection, jobs: list[WriteJob], busy_timeout_ms: int) -> None:
    """Run ``jobs`` in one BEGIN IMMEDIATE … COMMIT; sets each job's result or error.

    IMMEDIATE takes the write lock up front, so the transaction cannot fail half-way with
    SQLITE_BUSY. Only this BEGIN waits for a lock another process holds (``busy_timeout_ms``):
    the writer's resting busy timeout is 0, so that nothing run on the event loop's thread
    ever waits for one (``GroupCommitter``).
    """
    conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        _fail_all(jobs, store_error(exc), exc)
        return
    finally:
        conn.execute("PRAGMA busy_timeout = 0")
    if run_jobs(conn, jobs):
        commit(conn, jobs)


def begin_nowait(conn: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE without waiting for a lock (the writer's busy timeout is 0): False if
    another process holds it."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if is_lock_error(exc):
            return False
        raise
    return True


def run_jobs(conn: sqlite3.Connection, jobs: list[WriteJob]) -> bool:
    """Each job in its savepoint (none for a batch of one), inside the open transaction; False
    if that transaction was ended: then no job of the batch may be acknowledged, and there is
    nothing to commit."""
    alone = len(jobs) == 1
    for job in jobs:
        _run_job(conn, job, alone=alone)
        if not conn.in_transaction:
            # Rolled back (a lone job that raised, or SQLite on its own): the jobs before this
            # one are gone too, so none of them may be acknowledged.
            cause = job.error if job.error is not None else "the transaction ended"
            for other in jobs:
                if other.error is None:
                    other.error = StoreError(f"transaction rolled back: {cause}")
            return False
    return True


def commit(conn: sqlite3.Connection, jobs: list[WriteJob]) -> None:
    """COMMIT the open transaction of ``jobs``; if it fails, none of them is acknowledged."""
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        _fail_all([j for j in jobs if j.error is None], store_error(exc), exc)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _fail_all(jobs: list[WriteJob], error: StoreError, cause: BaseException) -> None:
    error.__cause__ = cause
    for job in jobs:
        job.error = error
        job.result = None


@dataclass(slots=True)
class GroupCommitter:
    """Queues write jobs for one connection and commits them in batches (see module doc)."""

    conn: sqlite3.Connection
    thread_limiter: trio.CapacityLimiter
    busy_timeout_ms: int = 5000
    counters: CommitCounters = field(default_factory=CommitCounters)
    queue: list[WriteJob] = field(default_factory=list)
    committing: bool = False
    _batch_done: trio.Event = field(default_factory=trio.Event)

    async def submit(self, fn: Callable[[sqlite3.Connection], Any], *, keyed: bool = False) -> Any:
        job = WriteJob(fn, keyed)
        self.queue.append(job)
        try:
            await self._until_done(job)
        finally:
            if job.state == DONE:  # part of a batch, whatever happened: return in its order
                with trio.CancelScope(shield=True):
                    await job.turn.wait()
                if job.next is not None:
                    job.next.turn.set()
        return job.outcome()

    async def _until_done(self, job: WriteJob) -> None:
        try:
            while job.state != DONE:
                if self.committing:
                    await self._batch_done.wait()
                else:
                    await self.commit_queued()
        except trio.Cancelled:
            if job.state == QUEUED:
                self.queue.remove(job)  # never started: it simply does not happen
                raise
            # Started: like any write, it either commits or rolls back completely; wait for
            # which, hand back the outcome, and let the cancel land at the next checkpoint.
            with trio.CancelScope(shield=True):
                while job.state != DONE:
                    await self._batch_done.wait()

    async def commit_queued(self) -> None:
        """Commit everything queued now (no-op when empty); caller checks ``committing``."""
        if not self.queue:
            return
        batch, self.queue = self.queue, []
        self.committing = True
        for job, after in itertools.pairwise(batch):
            job.next = after
        for job in batch:
            job.state = RUNNING
        try:
            # Shielded, and abandon_on_cancel=False (the default): once its jobs are marked
            # running, a batch always runs to its end, whoever of its writers is cancelled.
            with trio.CancelScope(shield=True):
                await self._run(batch)
        except BaseException as exc:
            for job in batch:
                if job.error is None:
                    job.error = exc
            raise
        finally:
            ok = sum(1 for job in batch if job.error is None)
            if ok:
                self.counters.commits += 1
                self.counters.writes += ok
                self.counters.largest_batch = max(self.counters.largest_batch, len(batch))
            for job in batch:
                job.state = DONE
            batch[0].turn.set()
            self.committing = False
            done, self._batch_done = self._batch_done, trio.Event()
            done.set()

    async def _run(self, batch: list[WriteJob]) -> None:
        conn = self.conn
        if all(job.keyed for job in batch):
            try:
                begun = begin_nowait(conn)
            except sqlite3.Error as exc:
                _fail_all(batch, store_error(exc), exc)
                return
            if begun:
                self.counters.inline_batches += 1
                try:
                    complete = run_jobs(conn, batch)
                except BaseException:
                    # Interrupted on the loop's thread (KeyboardInterrupt can land anywhere
                    # here, unlike in a worker thread): leave no transaction open for the next
                    # batch; the caller marks every job of this one failed.
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                if complete:
                    await trio.to_thread.run_sync(commit, conn, batch, limiter=self.thread_limiter)
                return
        await trio.to_thread.run_sync(
            run_batch, conn, batch, self.busy_timeout_ms, limiter=self.thread_limiter
        )

    async def drain(self) -> None:
        """Wait until nothing is queued or running (used by close)."""
        while self.queue or self.committing:
            if self.committing:
                await self._batch_done.wait()
            else:
                await self.commit_queued()
