"""The SQLite journal that makes a bulk run resumable.

Each item is recorded before its transfer is sent (state ``sending``, with the
``X-EXTERNAL-ID`` it will carry) and updated with each outcome. Every write is its own
transaction, in WAL mode, so a crash or Ctrl-C at any point leaves the journal consistent.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from decimal import Decimal

from ._models import PayoutItem

__all__ = ["FINAL_STATES", "IN_DOUBT_STATES", "Journal", "JournalEntry"]

FINAL_STATES = frozenset({"succeeded", "failed"})
"""States a resumed run does not touch again."""
IN_DOUBT_STATES = frozenset({"sending", "unknown", "pending"})
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
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"Journal({self.path!r})"

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # --- metadata ----------------------------------------------------------------------

    def set_meta(self, **values: str) -> None:
        """Remember run settings (e.g. the customer number) for ``resume``."""
        with self._db:
            self._db.executemany(
                "INSERT INTO meta(key, value) VALUES(?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                list(values.items()),
            )

    def meta(self) -> dict[str, str]:
        """All remembered settings."""
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    # --- items -------------------------------------------------------------------------

    def plan(self, items: Iterable[PayoutItem]) -> int:
        """Record items not journaled yet as ``planned``, in one transaction."""
        now = time.time()
        rows = ((*_columns(i), "planned", now) for i in items)
        with self._db:
            cur = self._db.executemany(
                "INSERT OR IGNORE INTO items(reference, line, bank_code, account_number, "
                "account_name, amount, remark, state, updated) VALUES(?,?,?,?,?,?,?,?,?)",
                rows,
            )
        return cur.rowcount

    def get(self, reference: str) -> JournalEntry | None:
        """The entry of ``reference``, if journaled."""
        row = self._db.execute(
            "SELECT reference, line, bank_code, account_number, account_name, amount, remark, "
            "state, external_id, reference_no, code, message FROM items WHERE reference = ?",
            (reference,),
        ).fetchone()
        return None if row is None else _entry(row)

    def entries(self, *, exclude_final: bool = False) -> Iterator[JournalEntry]:
        """Entries in input order (streamed, not loaded at once)."""
        sql = (
            "SELECT reference, line, bank_code, account_number, account_name, amount, remark, "
            "state, external_id, reference_no, code, message FROM items"
        )
        params: tuple[str, ...] = ()
        if exclude_final:
            params = tuple(sorted(FINAL_STATES))
            sql += f" WHERE state NOT IN ({','.join('?' * len(params))})"
        sql += " ORDER BY line, rowid"
        cursor = self._db.execute(sql, params)
        while rows := cursor.fetchmany(500):
            for row in rows:
                yield _entry(row)

    def mark_sending(self, item: PayoutItem, external_id: str) -> None:
        """Record, before sending, that ``item``'s transfer goes out with ``external_id``."""
        with self._db:
            self._db.execute(
                "INSERT INTO items(reference, line, bank_code, account_number, account_name, "
                "amount, remark, state, external_id, updated) VALUES(?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(reference) DO UPDATE SET state='sending', "
                "external_id=excluded.external_id, updated=excluded.updated",
                (*_columns(item), "sending", external_id, time.time()),
            )

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
        with self._db:
            self._db.execute(
                "INSERT INTO items(reference, line, bank_code, account_number, account_name, "
                "amount, remark, state, code, message, reference_no, updated) "
                "VALUES(?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(reference) DO UPDATE SET "
                "state=excluded.state, code=excluded.code, message=excluded.message, "
                "reference_no=COALESCE(excluded.reference_no, items.reference_no), "
                "updated=excluded.updated",
                (
                    *_columns(item),
                    state,
                    code,
                    message[:500],
                    reference_no,
                    time.time(),
                ),
            )

    def counts(self) -> dict[str, int]:
        """How many items are in each state."""
        return dict(self._db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())


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
