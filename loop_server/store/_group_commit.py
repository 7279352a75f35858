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

Who commits: the first writer that finds no commit running takes everything queued and runs
it; the others sleep until the batch before theirs ends, when its leader wakes the first of
them to lead the next (``GroupCommitter``). Each sleeping writer is woken once to lead or
once to return: no event wakes them all. No background task is needed, so ``Database`` keeps
its plain ``open``/``close`` life cycle.

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

import functools
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
    task: trio.lowlevel.Task | None = None  # the writer's task, while it may be parked
    # True when this job's writer may return: the job committed before it has returned
    # (``GroupCommitter._return``); ``next`` is the job committed after it, once known.
    turn: bool = False
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


async def _in_thread(fn: Callable[..., None], *args: Any) -> None:
    """``fn(*args)`` in a worker thread of Trio's cache; like ``trio.to_thread.run_sync``
    without what a COMMIT does not need: a capacity limiter (one commit runs at a time),
    a copy of the context, ``trio.from_thread`` support, and cancellation (the caller
    shields). That is ~15 µs of the event loop's ~60 µs per hop (2 CPUs)."""
    task = trio.lowlevel.current_task()
    token = trio.lowlevel.current_trio_token()

    def deliver(result: Any) -> None:  # an outcome.Outcome
        token.run_sync_soon(trio.lowlevel.reschedule, task, result)

    trio.lowlevel.start_thread_soon(functools.partial(fn, *args), deliver)
    await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)


@dataclass(slots=True)
class GroupCommitter:
    """Queues write jobs for one connection and commits them in batches (see module doc).

    Who runs a batch: the *leader*, always the first job of the queue it takes. A writer that
    finds no leader becomes one; the others park. When a batch ends, its leader hands the
    writer on by waking the first job queued meanwhile, which leads the next batch; so no
    waiter is woken but to lead or to return. ``committing`` is True while a leader holds the
    writer, from its election to the end of its batch.

    In what order writers return: in commit order, across batches too. Each job returns only
    after the job committed before it has returned, and wakes the one after it as it does
    (``_return``); Trio resumes tasks woken together in no set order, and what a writer does
    next (publish an event, answer) must follow the order its write was stored in.
    """

    conn: sqlite3.Connection
    thread_limiter: trio.CapacityLimiter
    busy_timeout_ms: int = 5000
    counters: CommitCounters = field(default_factory=CommitCounters)
    queue: list[WriteJob] = field(default_factory=list)
    committing: bool = False
    # The last job committed, until it has returned: the next batch's first job waits for it.
    _tail: WriteJob | None = None
    _drained: trio.Event | None = None  # set when no leader holds the writer (``drain``)

    async def submit(self, fn: Callable[[sqlite3.Connection], Any], *, keyed: bool = False) -> Any:
        job = WriteJob(fn, keyed)
        self.queue.append(job)
        if self.committing:
            await self._park(job)  # woken to lead (still QUEUED), or when its turn has come
        else:
            self.committing = True
        try:
            if job.state == QUEUED:
                await self._lead()
        finally:
            if job.state == DONE:  # part of a batch, whatever happened: return in its order
                if not job.turn:
                    await self._park(job)
                self._return(job)
        return job.outcome()

    async def _park(self, job: WriteJob) -> None:
        """Sleep until ``_lead``'s hand-over or ``_return`` wakes ``job``'s task. Cancelled
        while queued, the job is dropped (it simply does not happen); once in a batch it
        cannot be: like any write it commits or rolls back completely, and the cancellation
        lands at the writer's next checkpoint, after it has its outcome."""
        job.task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            if job.state != QUEUED:
                return trio.lowlevel.Abort.FAILED
            self.queue.remove(job)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _wake(self, job: WriteJob) -> None:
        assert job.task is not None
        trio.lowlevel.reschedule(job.task)

    async def _lead(self) -> None:
        """Commit everything queued now, as one batch; this writer's job is its first."""
        batch, self.queue = self.queue, []
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
            self._finish(batch)

    def _finish(self, batch: list[WriteJob]) -> None:
        ok = sum(1 for job in batch if job.error is None)
        if ok:
            self.counters.commits += 1
            self.counters.writes += ok
            self.counters.largest_batch = max(self.counters.largest_batch, len(batch))
        for job in batch:
            job.state = DONE
        for job, after in itertools.pairwise(batch):
            job.next = after
        if self._tail is None:
            batch[0].turn = True  # the leader, running: it returns without parking
        else:
            self._tail.next = batch[0]
        self._tail = batch[-1]
        if self.queue:
            self._wake(self.queue[0])  # it leads the next batch; ``committing`` stays True
        else:
            self.committing = False
            if self._drained is not None:
                self._drained.set()
                self._drained = None

    def _return(self, job: WriteJob) -> None:
        if self._tail is job:
            self._tail = None
        after = job.next
        if after is not None:
            after.turn = True
            self._wake(after)

    async def _run(self, batch: list[WriteJob]) -> None:
        conn = self.conn
        if all(job.keyed for job in batch):
            try:
                begun = begin_nowait(conn)
            except sqlite3.Error as exc:
                _fail_all(batch, store_error(exc), exc)
                await trio.lowlevel.checkpoint()  # a write is a checkpoint, failed or not
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
                    await _in_thread(commit, conn, batch)
                else:
                    await trio.lowlevel.checkpoint()
                return
        await trio.to_thread.run_sync(
            run_batch, conn, batch, self.busy_timeout_ms, limiter=self.thread_limiter
        )

    async def drain(self) -> None:
        """Wait until nothing is queued or running (used by close)."""
        while self.committing:
            if self._drained is None:
                self._drained = trio.Event()
            await self._drained.wait()
