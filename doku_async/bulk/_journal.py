"""The SQLite journal that makes a bulk run resumable.

Each item is recorded before its transfer is sent (state ``sending``, with the
``X-EXTERNAL-ID`` it will carry) and updated with each outcome, in WAL mode with durable
commits, so a crash, a power cut or Ctrl-C at any point leaves the journal consistent.

The bulk runner writes through a group commit: the writes its workers make in one event-loop
iteration go into one transaction, committed at the start of the next iteration. A ``sending``
mark is awaited until its transaction has committed, so the transfer is never sent before its
mark is on disk; an outcome is queued without waiting (if the process dies first, the item
still reads ``sending`` and a resumed run settles it through check status). One commit per
group instead of one per write costs about a third of the CPU per write.

A journal is one process's at a time (see :mod:`._lock`): a second process is refused at once
with the holder's pid, host and start time. Planning is one transaction that also records the
input file's row count and checksum, so a plan interrupted by a crash leaves nothing, and a
resume can tell a complete plan from a partial one. Closing checkpoints the write-ahead log
into the main file; :func:`backup_journal` makes a consistent single-file copy of a live one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from .._exceptions import DokuError
from ._lock import DEFAULT_LEASE, JournalLock
from ._models import PayoutItem

__all__ = [
    "FINAL_STATES",
    "IN_DOUBT_STATES",
    "IncompletePlanError",
    "Journal",
    "JournalEntry",
    "PlanMismatchError",
    "PlanRecord",
    "PlanSource",
    "backup_journal",
]

log = logging.getLogger("doku_async.bulk")

FINAL_STATES = frozenset({"succeeded", "failed", "refunded"})
"""States a resumed run does not touch again."""
IN_DOUBT_STATES = frozenset({"sending", "unknown", "accepted", "pending"})
"""States whose transfer may have been sent: settled through check status before paying."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    reference TEXT PRIMARY KEY,
    line INTEGER,
    bank_code TEXT NOT NULL,
    account_number TEXT NOT NULL,
    account_name TEXT NOT NULL,
    amount TEXT NOT NULL,
    remark TEXT,
    state TEXT NOT NULL,
    external_id TEXT,
    reference_no TEXT,
    code TEXT,
    message TEXT,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_MARK_SENDING = (
    "INSERT INTO items(reference, line, bank_code, account_number, account_name, "
    "amount, remark, state, external_id, updated) VALUES(?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(reference) DO UPDATE SET state='sending', "
    "external_id=excluded.external_id, updated=excluded.updated"
)
_RECORD = (
    "INSERT INTO items(reference, line, bank_code, account_number, account_name, "
    "amount, remark, state, code, message, reference_no, updated) "
    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(reference) DO UPDATE SET "
    "state=excluded.state, code=excluded.code, message=excluded.message, "
    "reference_no=COALESCE(excluded.reference_no, items.reference_no), "
    "updated=excluded.updated"
)

_SELECT = (
    "SELECT reference, line, bank_code, account_number, account_name, amount, remark, "
    "state, external_id, reference_no, code, message FROM items"
)

_Write = tuple[str, tuple[object, ...], "asyncio.Future[None] | None"]

_PLAN_KEYS = ("plan_rows", "plan_sha256", "plan_name", "planned_at")


@dataclass(frozen=True)
class PlanSource:
    """The input a plan was made from: its row count, the sha256 of its bytes, a name."""

    rows: int
    sha256: str
    name: str = ""


@dataclass(frozen=True)
class PlanRecord:
    """A complete plan, as recorded in the journal (in the plan's own transaction)."""

    rows: int
    sha256: str
    name: str
    planned_at: float


class PlanMismatchError(DokuError):
    """The journal was planned from another input file; nothing was written or sent."""


class IncompletePlanError(DokuError):
    """The journal holds no complete plan (planning was interrupted, or the journal file lost
    its latest transactions); a resume would skip payees, so it is refused. Nothing was sent.
    Attributes: ``planned`` rows present, ``expected`` rows (``None`` when unknown)."""

    def __init__(self, message: str, *, planned: int, expected: int | None) -> None:
        super().__init__(message)
        self.planned = planned
        self.expected = expected


class JournalEntry:
    """One journaled item and its last known state."""

    __slots__ = ("code", "external_id", "item", "message", "reference_no", "state")

    def __init__(
        self,
        item: PayoutItem,
        state: str,
        external_id: str | None,
        reference_no: str | None,
        code: str | None,
        message: str | None,
    ) -> None:
        self.item = item
        self.state = state
        self.external_id = external_id
        self.reference_no = reference_no
        self.code = code or ""
        self.message = message or ""

    def __repr__(self) -> str:
        return f"JournalEntry({self.item.reference!r}, state={self.state!r})"


class Journal:
    """A bulk run's journal in one SQLite file.

    States: ``planned`` (known, never sent), ``retry`` (not paid; a later run may retry),
    ``sending`` (the transfer may be in flight), ``pending``, ``unknown``, ``succeeded``,
    ``failed`` (definitely not paid, not retried).

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
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                self._db.execute("PRAGMA busy_timeout=5000")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
            except BaseException:
                self._db.close()
                raise
        except BaseException:
            self._release()
            raise
        self._lock = threading.RLock()
        self._queued: list[_Write] = []
        self._queued_refs: set[str] = set()
        self._scheduled: asyncio.AbstractEventLoop | None = None
        """The loop holding a pending group commit, if any."""
        self._failed: BaseException | None = None
        self._closed = False

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

    async def mark_sending_grouped(self, item: PayoutItem, external_id: str) -> None:
        """:meth:`mark_sending` in the next group commit; returns once it is committed.

        Raises the database's error if that commit failed: the transfer must not be sent.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue(item.reference, _MARK_SENDING, _sending_params(item, external_id), done)
        await done

    def record_soon(
        self,
        item: PayoutItem,
        state: str,
        *,
        code: str = "",
        message: str = "",
        reference_no: str | None = None,
    ) -> None:
        """:meth:`record` in the next group commit, without waiting for it (needs a running
        event loop). Raises at once if an earlier group commit failed."""
        self._queue(
            item.reference, _RECORD, _record_params(item, state, code, message, reference_no), None
        )

    def flush(self) -> None:
        """Commit the queued writes now, in one transaction (in the order they were made).

        Raises the database's error if that commit failed (and, with writes queued, if an
        earlier one did).
        """
        with self._lock:
            queued = self._queued
            if not queued:
                return
            self._check_writable()
            self._queued = []
            self._queued_refs.clear()
            db = self._db
            try:
                db.execute("BEGIN")
                for sql, params, _ in queued:
                    db.execute(sql, params)
                db.execute("COMMIT")
            except BaseException as exc:
                self._failed = exc
                with contextlib.suppress(sqlite3.Error):
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                _resolve(queued, exc)
                raise
        _resolve(queued, None)

    def _check_writable(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._closed:
            raise sqlite3.ProgrammingError(f"the journal {self.path} is closed")

    def _queue(
        self,
        reference: str,
        sql: str,
        params: tuple[object, ...],
        done: asyncio.Future[None] | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            self._check_writable()
            if self._scheduled is not loop:  # none pending on this loop (or on a stopped one)
                loop.call_soon(self._flush_queued)
                self._scheduled = loop
            self._queued.append((sql, params, done))
            self._queued_refs.add(reference)

    def _flush_queued(self) -> None:
        with self._lock:
            self._scheduled = None
            try:
                self.flush()
            except Exception:
                # Kept in ``_failed``: the waiting marks get it, and every later write raises.
                log.error("the journal %s could not be written", self.path, exc_info=True)

    # --- metadata ----------------------------------------------------------------------

    def set_meta(self, **values: str) -> None:
        """Remember run settings (e.g. the customer number) for ``resume``."""
        with self._lock:
            self.flush()
            self._check_writable()
            with self._db:
                self._db.executemany(
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
                self._check_same_source(recorded, source, items)
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

    def _check_same_source(
        self, recorded: PlanRecord | None, source: PlanSource, items: Iterable[PayoutItem]
    ) -> None:
        if recorded is not None:
            if recorded.sha256 != source.sha256 or recorded.rows != source.rows:
                raise PlanMismatchError(
                    f"the journal {self.path} was planned from another file "
                    f"({recorded.name or 'unnamed'}: {recorded.rows} rows, sha256 "
                    f"{recorded.sha256[:12]}...); this file ({source.name or 'unnamed'}) has "
                    f"{source.rows} rows, sha256 {source.sha256[:12]}...: nothing was sent. "
                    "Use a new journal for a new file."
                )
            return
        # No record: an interrupted plan of an older version, or a journal written by the
        # library. The file may complete it only if it holds every journaled reference.
        given = {item.reference for item in items}
        extra = 0
        example = ""
        for (reference,) in self._db.execute("SELECT reference FROM items"):
            if reference not in given:
                extra += 1
                example = example or str(reference)
        if extra:
            raise PlanMismatchError(
                f"the journal {self.path} holds {extra} reference(s) this file lacks (e.g. "
                f"{example}): it belongs to another file; nothing was sent. Use a new journal "
                "for a new file."
            )

    def plan_record(self) -> PlanRecord | None:
        """The journal's complete plan, or ``None`` when no plan was recorded as complete."""
        meta = self.meta()
        try:
            return PlanRecord(
                rows=int(meta["plan_rows"]),
                sha256=meta["plan_sha256"],
                name=meta.get("plan_name", ""),
                planned_at=float(meta.get("planned_at", "0")),
            )
        except (KeyError, ValueError):
            return None

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
        record = self.plan_record()
        if record is None:
            raise IncompletePlanError(
                f"the journal {self.path} holds {count} item(s) but no record of a complete "
                "plan (planning was interrupted, or the journal lost its latest "
                "transactions): resuming could skip payees, so nothing was sent. Run "
                "'doku-async payouts run FILE --journal JOURNAL' again with the same payout "
                "file to complete the plan and continue.",
                planned=int(count),
                expected=None,
            )
        if int(count) < record.rows:
            raise IncompletePlanError(
                f"the journal {self.path} holds {count} of the {record.rows} planned rows "
                f"({record.name or 'the payout file'}): it lost transactions, so resuming "
                "could skip payees; nothing was sent. Restore a backup ('doku-async journal "
                "backup'), or run 'doku-async payouts run FILE --journal JOURNAL' again with "
                "the same payout file to complete the plan.",
                planned=int(count),
                expected=record.rows,
            )
        return record

    def get(self, reference: str) -> JournalEntry | None:
        """The entry of ``reference``, if journaled."""
        with self._lock:
            if reference in self._queued_refs:
                self.flush()
            row = self._db.execute(_SELECT + " WHERE reference = ?", (reference,)).fetchone()
        return None if row is None else _entry(row)

    def entries(self, *, exclude_final: bool = False) -> Iterator[JournalEntry]:
        """Entries in input order (streamed, not loaded at once)."""
        sql = _SELECT
        params: tuple[str, ...] = ()
        if exclude_final:
            params = tuple(sorted(FINAL_STATES))
            sql += f" WHERE state NOT IN ({','.join('?' * len(params))})"
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
                yield _entry(row)

    def mark_sending(self, item: PayoutItem, external_id: str) -> None:
        """Record, before sending, that ``item``'s transfer goes out with ``external_id``."""
        with self._lock:
            self.flush()
            self._check_writable()
            with self._db:
                self._db.execute(_MARK_SENDING, _sending_params(item, external_id))

    def record(
        self,
        item: PayoutItem,
        state: str,
        *,
        code: str = "",
        message: str = "",
        reference_no: str | None = None,
    ) -> None:
        """Record an outcome for ``item``."""
        with self._lock:
            self.flush()
            self._check_writable()
            with self._db:
                self._db.execute(_RECORD, _record_params(item, state, code, message, reference_no))

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


def backup_journal(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> int:
    """Copy a journal, live or not, into ``dest`` as one consistent, self-contained file.

    Uses SQLite's online backup API: the copy holds every committed transaction, the
    write-ahead log included (copying ``run.db`` alone may lose them). It needs no lock (a
    run may be going on). Returns the number of items in the copy.

    Raises:
        FileExistsError: ``dest`` exists (never overwritten).
        FileNotFoundError: ``source`` does not exist.
        sqlite3.Error: ``source`` is not a readable journal.
    """
    source, dest = os.fspath(source), os.fspath(dest)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"no journal at {source}")
    if os.path.exists(dest):
        raise FileExistsError(f"{dest} exists; not overwritten")
    src = sqlite3.connect(source, isolation_level=None)
    try:
        src.execute("PRAGMA busy_timeout=5000")
        src.execute("SELECT COUNT(*) FROM items").fetchone()  # a journal, readable
        out = sqlite3.connect(dest, isolation_level=None)
        try:
            src.backup(out)
            out.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it
            (status,) = out.execute("PRAGMA quick_check").fetchone()
            if status != "ok":
                raise sqlite3.DatabaseError(f"the copy failed its check: {status}")
            (count,) = out.execute("SELECT COUNT(*) FROM items").fetchone()
        finally:
            out.close()
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(dest)
        raise
    finally:
        src.close()
    return int(count)


def _resolve(queued: list[_Write], exc: BaseException | None) -> None:
    """Settle the waiting marks, each on its own loop (a flush may run in another thread)."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for _, _, done in queued:
        if done is None:
            continue
        loop = done.get_loop()
        if loop is running:
            _settle(done, exc)
        elif not loop.is_closed():  # a closed loop has nobody waiting any more
            with contextlib.suppress(RuntimeError):  # closed in between
                loop.call_soon_threadsafe(_settle, done, exc)


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():
        return  # the waiter was cancelled
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)


def _sending_params(item: PayoutItem, external_id: str) -> tuple[object, ...]:
    return (*_columns(item), "sending", external_id, time.time())


def _record_params(
    item: PayoutItem, state: str, code: str, message: str, reference_no: str | None
) -> tuple[object, ...]:
    return (*_columns(item), state, code, message[:500], reference_no, time.time())


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


def _entry(row: tuple[object, ...]) -> JournalEntry:
    (reference, line, bank, account, name, amount, remark, state, ext, ref_no, code, msg) = row
    item = PayoutItem(
        reference=str(reference),
        bank_code=str(bank),
        account_number=str(account),
        account_name=str(name),
        amount=Decimal(str(amount)),
        remark=None if remark is None else str(remark),
        line=None if line is None else int(str(line)),
    )
    return JournalEntry(
        item,
        str(state),
        None if ext is None else str(ext),
        None if ref_no is None else str(ref_no),
        None if code is None else str(code),
        None if msg is None else str(msg),
    )
