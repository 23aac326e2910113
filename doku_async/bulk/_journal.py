"""The SQLite journal that makes a bulk run resumable, and the record of every payout's state.

Each item is recorded before its transfer is sent (state ``sending``, with the
``X-EXTERNAL-ID`` it will carry and the inquiry's ``sessionId``) and updated with each
outcome, in WAL mode with durable commits, so a crash, a power cut or Ctrl-C at any point
leaves the journal consistent.

The journal follows DOKU after the run too: every piece of news about a payout (the
transfer's answer, check status, a notification, a reconcile, a resume) is kept as an event
(:meth:`Journal.events`), and the item's state moves only forward
(:meth:`~doku_async.PayoutState.advances`): whatever order the news arrives in, an older
state never overwrites a newer one. :meth:`Journal.apply` is the way in for webhooks and
reconciliation; :meth:`Journal.find_by_reference_no` maps DOKU's ``referenceNo`` (all a
notification names) to the item.

The bulk runner writes through a group commit: the writes its workers make in one event-loop
iteration go into one transaction, committed at the start of the next iteration. A ``sending``
mark is awaited until its transaction has committed, so the transfer is never sent before its
mark is on disk; an outcome (with its event) is queued without waiting (if the process dies
first, the item still reads ``sending`` and a resumed run settles it through check status).
One commit per group instead of one per write costs about a third of the CPU per write.

A journal is one process's at a time (see :mod:`._lock`): a second process is refused at once
with the holder's pid, host and start time. Planning is one transaction that also records the
input file's row count and checksum, so a plan interrupted by a crash leaves nothing, and a
resume can tell a complete plan from a partial one. Closing checkpoints the write-ahead log
into the main file; :func:`backup_journal` makes a consistent single-file copy of a live one.
The schema is versioned (see :mod:`._schema`): an older journal is upgraded when opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Collection, Iterable, Iterator

from ._history import JournalHistory
from ._lock import DEFAULT_LEASE, JournalLock
from ._models import PayoutItem
from ._plan import (
    IncompletePlanError,
    PlanMismatchError,
    PlanRecord,
    PlanSource,
    check_complete,
    check_same_source,
    plan_record_of,
)
from ._records import JournalEntry, JournalEvent, entry_from_row
from ._schema import (
    EVENT,
    FINAL_STATES,
    IN_DOUBT_STATES,
    MARK_SENDING,
    MESSAGE_MAX,
    RECORD,
    SELECT,
    backup_journal,
    check_source,
    connect,
)

__all__ = [
    "FINAL_STATES",
    "IN_DOUBT_STATES",
    "IncompletePlanError",
    "Journal",
    "JournalEntry",
    "JournalEvent",
    "PlanMismatchError",
    "PlanRecord",
    "PlanSource",
    "backup_journal",
]

log = logging.getLogger("doku_async.bulk")

_PLAN_KEYS = ("plan_rows", "plan_sha256", "plan_name", "planned_at")


class Journal(JournalHistory):
    """A bulk run's journal in one SQLite file.

    States: ``planned`` (known, never sent), ``retry`` (not paid; a later run may retry),
    ``sending`` (the transfer may be in flight), then DOKU's, as
    :class:`~doku_async.PayoutState` names them: ``accepted``, ``pending``, ``unknown``,
    ``succeeded``, ``failed`` (definitely not paid, not retried), ``refunded``. Outcomes and
    :meth:`apply` move a state only forward and record an event each (:meth:`events`).

    The plain methods write at once, each in its own transaction. Inside an event loop,
    :meth:`mark_sending_grouped` and :meth:`record_soon` queue their writes for one group
    commit per loop iteration (see the module's docstring). Every other method first commits
    what is queued, so it never sees a state older than what was written through the
    journal. Once a group commit failed, the journal refuses further writes with that error
    rather than go on with a gap (reads still work). Methods may be called from other threads
    (e.g. a metrics thread reading :meth:`counts` during a run): one lock serializes them.

    Commits are durable (``synchronous=FULL`` in WAL mode): a ``sending`` mark is on disk
    before its transfer goes out, even across a power cut.

    Opening a journal takes its lock (``<path>.lock``, see :class:`JournalLock`): a journal
    another process holds raises :class:`JournalLockedError` at once, naming the holder.
    ``lock=False`` opens without it, for reading only (``payouts status``, a backup).

    Args:
        path: the SQLite file (created if missing).
        lock: take the journal's lock (default).
        break_lock: take over another host's lock record before its lease expired.
        lease: seconds after which another host's silent lock record counts as abandoned.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock: bool = True,
        break_lock: bool = False,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        self.path = os.fspath(path)
        self._file_lock: JournalLock | None = None
        if lock:
            self._file_lock = JournalLock(self.path, lease=lease, break_lock=break_lock)
            self._file_lock.acquire()
        # Released with the object if it is never closed (a lock must not outlive its user).
        self._release = weakref.finalize(self, _release_lock, self._file_lock)
        try:
            db = connect(self.path)  # creates the schema, or upgrades an older one
        except BaseException:
            self._release()
            raise
        super().__init__(self.path, db)

    def __repr__(self) -> str:
        return f"Journal({self.path!r})"

    def close(self) -> None:
        """Commit what is queued, fold the write-ahead log into the main file (so that the
        journal is one file again), close the database and release the lock. Idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                self.flush()
            finally:
                self._closed = True
                try:
                    if self._failed is None and self._file_lock is not None:  # the owner
                        try:
                            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                        except sqlite3.Error:  # a reader holds it, or the disk is full
                            log.warning("could not checkpoint the journal %s", self.path)
                    self._db.close()
                finally:
                    self._release()

    @property
    def locked(self) -> bool:
        """Whether this journal holds its lock (opened with ``lock=True`` and not closed)."""
        return self._file_lock is not None and self._file_lock.held

    # --- group commit ------------------------------------------------------------------

    async def mark_sending_grouped(
        self, item: PayoutItem, external_id: str, *, session_id: str | None = None
    ) -> None:
        """:meth:`mark_sending` in the next group commit; returns once it is committed.

        Raises the database's error if that commit failed: the transfer must not be sent.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        params = _sending_params(item, external_id, session_id)
        self._queue(item.reference, MARK_SENDING, params, done)
        await done

    def record_soon(
        self,
        item: PayoutItem,
        state: str,
        *,
        code: str = "",
        message: str = "",
        reference_no: str | None = None,
        source: str = "answer",
    ) -> None:
        """:meth:`record` in the next group commit, without waiting for it (needs a running
        event loop). Raises at once if an earlier group commit failed."""
        record, event = _outcome_params(item, state, code, message, reference_no, source)
        with self._lock:
            self._queue(item.reference, RECORD, record, None)
            self._queue(item.reference, EVENT, event, None)

    # --- metadata ----------------------------------------------------------------------

    def set_meta(self, **values: str) -> None:
        """Remember run settings (e.g. the customer number) for ``resume``."""
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO meta(key, value) VALUES(?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                list(values.items()),
            )

    def meta(self) -> dict[str, str]:
        """All remembered settings."""
        with self._lock:
            self.flush()
            return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    # --- items -------------------------------------------------------------------------

    def plan(self, items: Iterable[PayoutItem], *, source: PlanSource | None = None) -> int:
        """Record the items not journaled yet as ``planned``; returns how many were new.

        All in one transaction: a crash, a full disk or an error while planning leaves the
        journal as it was, never half planned. With ``source`` (the input file's row count
        and checksum) the same transaction records the plan as complete
        (:meth:`plan_record`), which :meth:`check_plan_complete` requires before a resume.

        Raises:
            PlanMismatchError: the journal's recorded plan came from another input, or (with no
                record) it holds references ``items`` lacks. Nothing is written.
        """
        now = time.time()
        if source is not None and not isinstance(items, list | tuple):
            items = list(items)  # read twice: checked against the journal, then planned
        with self._lock:
            self.flush()
            self._check_writable()
            recorded = self.plan_record()
            if source is not None:
                check_same_source(self._db, self.path, recorded, source, items)
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.executemany(
                    "INSERT OR IGNORE INTO items(reference, line, bank_code, account_number, "
                    "account_name, amount, remark, state, updated) VALUES(?,?,?,?,?,?,?,?,?)",
                    ((*_columns(i), "planned", now) for i in items),
                )
                inserted = cur.rowcount
                if source is not None and recorded is None:
                    db.executemany(
                        "INSERT INTO meta(key, value) VALUES(?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        zip(
                            _PLAN_KEYS,
                            (str(source.rows), source.sha256, source.name, repr(now)),
                            strict=True,
                        ),
                    )
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                raise
            return inserted

    def plan_record(self) -> PlanRecord | None:
        """The journal's complete plan, or ``None`` when no plan was recorded as complete."""
        return plan_record_of(self.meta())

    def check_plan_complete(self) -> PlanRecord:
        """The plan record, after checking that every planned row is in the journal.

        Raises:
            IncompletePlanError: no complete plan is recorded (planning was interrupted), or
                rows are missing (the journal lost transactions, e.g. ``run.db`` was copied
                without its ``-wal`` file). A resume would skip payees: re-run ``payouts run``
                with the same file (it completes the plan) or restore a backup.
        """
        with self._lock:
            self.flush()
            (count,) = self._db.execute("SELECT COUNT(*) FROM items").fetchone()
        return check_complete(self.path, int(count), self.plan_record())

    def get(self, reference: str) -> JournalEntry | None:
        """The entry of ``reference``, if journaled."""
        with self._lock:
            if reference in self._queued_refs:
                self.flush()
            row = self._db.execute(SELECT + " WHERE reference = ?", (reference,)).fetchone()
        return None if row is None else entry_from_row(row)

    def entries(
        self, *, exclude_final: bool = False, states: Collection[str] | None = None
    ) -> Iterator[JournalEntry]:
        """Entries in input order (streamed, not loaded at once); only those in ``states``
        when given, and without the final ones with ``exclude_final``."""
        sql = SELECT
        clauses: list[str] = []
        params: list[str] = []
        if exclude_final:
            clauses.append(f"state NOT IN ({','.join('?' * len(FINAL_STATES))})")
            params.extend(sorted(FINAL_STATES))
        if states is not None:
            clauses.append(f"state IN ({','.join('?' * len(states))})")
            params.extend(sorted(states))
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY line, rowid"
        with self._lock:
            self.flush()
            cursor = self._db.execute(sql, params)
        while True:
            with self._lock:
                rows = cursor.fetchmany(500)
            if not rows:
                return
            for row in rows:
                yield entry_from_row(row)

    def mark_sending(
        self, item: PayoutItem, external_id: str, *, session_id: str | None = None
    ) -> None:
        """Record, before sending, that ``item``'s transfer goes out with ``external_id``
        (and the account inquiry's ``session_id``)."""
        with self._transaction() as db:
            db.execute(MARK_SENDING, _sending_params(item, external_id, session_id))

    def record(
        self,
        item: PayoutItem,
        state: str,
        *,
        code: str = "",
        message: str = "",
        reference_no: str | None = None,
        source: str = "answer",
    ) -> None:
        """Record an outcome for ``item`` and its event (``source``: see
        :class:`JournalEvent`); the state moves only forward (a ``retry``, nothing paid,
        replaces anything not final). DOKU's ``reference_no`` is kept in any case."""
        record, event = _outcome_params(item, state, code, message, reference_no, source)
        with self._transaction() as db:
            db.execute(RECORD, record)
            db.execute(EVENT, event)

    def counts(self) -> dict[str, int]:
        """How many items are in each state."""
        with self._lock:
            self.flush()
            return dict(
                self._db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall()
            )


def _release_lock(lock: JournalLock | None) -> None:
    if lock is not None:
        lock.release()


def _sending_params(
    item: PayoutItem, external_id: str, session_id: str | None
) -> tuple[object, ...]:
    return (*_columns(item), "sending", external_id, session_id, time.time())


def _outcome_params(
    item: PayoutItem, state: str, code: str, message: str, reference_no: str | None, source: str
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """The parameters of an outcome's upsert and of its event."""
    check_source(source)
    now = time.time()
    message = message[:MESSAGE_MAX]
    return (
        (*_columns(item), state, code, message, reference_no, now),
        (item.reference, now, source, state, code, message),
    )


def _columns(item: PayoutItem) -> tuple[object, ...]:
    """The item's own columns, in table order."""
    return (
        item.reference,
        item.line,
        item.bank_code,
        item.account_number,
        item.account_name,
        str(item.amount),
        item.remark,
    )
