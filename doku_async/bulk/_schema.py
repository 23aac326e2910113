"""The journal's SQLite file: its versioned schema, the upgrade of older files, the statements
the journal runs, and :func:`backup_journal`.

The version is SQLite's ``PRAGMA user_version``:

* ``1`` (stored as ``0``: files written before versioning): ``items`` and ``meta``;
* ``2``: ``items.session_id`` (the inquiry's ``sessionId`` a transfer carried), an index on
  ``items.reference_no`` (a notification names DOKU's ``referenceNo`` only), and the
  ``events`` table: every piece of news about a payout (its transfer's answer, check status,
  a notification, a reconcile, a resume), kept in the order it was recorded.

Opening an older file upgrades it in place, in one transaction; a file from a newer version of
the SDK is refused rather than misread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3

from .._states import PayoutState

__all__ = ["SCHEMA_VERSION", "backup_journal", "connect"]

SCHEMA_VERSION = 2
"""The journal schema this SDK writes (``PRAGMA user_version``)."""

FINAL_STATES = frozenset({"succeeded", "failed", "refunded"})
"""States a resumed run does not touch again."""
IN_DOUBT_STATES = frozenset({"sending", "unknown", "accepted", "pending"})
"""States whose transfer may have been sent: settled through check status before paying."""
EVENT_SOURCES = frozenset({"answer", "check_status", "notification", "reconcile", "resume"})
"""Where a piece of news about a payout came from (``JournalEvent.source``)."""
MESSAGE_MAX = 500
"""Messages are kept up to this many characters."""

_V1 = """
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

_V2 = """
CREATE TABLE IF NOT EXISTS events (
    reference TEXT NOT NULL,
    at REAL NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_reference ON events(reference);
CREATE INDEX IF NOT EXISTS items_reference_no ON items(reference_no)
    WHERE reference_no IS NOT NULL;
"""

MARK_SENDING = (
    "INSERT INTO items(reference, line, bank_code, account_number, account_name, "
    "amount, remark, state, external_id, session_id, updated) VALUES(?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(reference) DO UPDATE SET state='sending', "
    "external_id=excluded.external_id, "
    "session_id=COALESCE(excluded.session_id, items.session_id), updated=excluded.updated"
)

_MOVES = "doku_moves(items.state, excluded.state)"
RECORD = (
    "INSERT INTO items(reference, line, bank_code, account_number, account_name, "
    "amount, remark, state, code, message, reference_no, updated) "
    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(reference) DO UPDATE SET "
    f"state=CASE WHEN {_MOVES} THEN excluded.state ELSE items.state END, "
    f"code=CASE WHEN {_MOVES} THEN excluded.code ELSE items.code END, "
    f"message=CASE WHEN {_MOVES} THEN excluded.message ELSE items.message END, "
    f"updated=CASE WHEN {_MOVES} THEN excluded.updated ELSE items.updated END, "
    "reference_no=COALESCE(excluded.reference_no, items.reference_no)"
)
"""An outcome of the runner: the state moves only forward (:func:`runner_moves`); DOKU's
``referenceNo`` is kept whatever the state."""

EVENT = "INSERT INTO events(reference, at, source, state, code, message) VALUES(?,?,?,?,?,?)"

SELECT = (
    "SELECT reference, line, bank_code, account_number, account_name, amount, remark, "
    "state, external_id, reference_no, code, message, session_id, updated FROM items"
)


def check_source(source: str) -> None:
    """Raise ``ValueError`` unless ``source`` is one of :data:`EVENT_SOURCES`."""
    if source not in EVENT_SOURCES:
        raise ValueError(
            f"source must be one of {', '.join(sorted(EVENT_SOURCES))}, not {source!r}"
        )


def runner_moves(current: str | None, new: str) -> bool:
    """Whether an outcome the runner records replaces the journaled state.

    :meth:`PayoutState.advances`, and the runner's ``retry`` (this attempt paid nothing, and
    DOKU held no earlier transfer: the runner only sends after check status said "not found")
    replaces anything but a final state.
    """
    if new == "retry":
        return current not in FINAL_STATES
    return PayoutState.advances(current, new)


def connect(path: str) -> sqlite3.Connection:
    """Open (creating or upgrading) the journal at ``path``: WAL, durable commits."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.create_function("doku_moves", 2, runner_moves, deterministic=True)
        _upgrade(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _version(db: sqlite3.Connection) -> int:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    return int(version)


def _upgrade(db: sqlite3.Connection, path: str) -> None:
    """Create the schema, or bring an older one up to :data:`SCHEMA_VERSION` in one
    transaction (a crash half way leaves the file as it was)."""
    if _version(db) == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _version(db)  # again, under the write lock
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"the journal {path} has schema version {version}, newer than this SDK's "
                f"{SCHEMA_VERSION}: open it with a newer doku-async"
            )
        if version < SCHEMA_VERSION:
            for statement in _V1.split(";"):
                if statement.strip():
                    db.execute(statement)
            columns = {row[1] for row in db.execute("PRAGMA table_info(items)")}
            if "session_id" not in columns:
                db.execute("ALTER TABLE items ADD COLUMN session_id TEXT")
            for statement in _V2.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            if db.in_transaction:
                db.execute("ROLLBACK")
        raise


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
