"""What a PostgreSQL journal knows about each payout: the reads and :meth:`apply` (news about a
payout; its state moves only forward), as the SQLite journal's :class:`JournalHistory`."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Collection, Iterator
from decimal import Decimal
from typing import Any

from .._states import PayoutState
from ._pgconn import PgConnection
from ._pgschema import EVENT, SELECT
from ._records import JournalEntry, JournalEvent, entry_from_row
from ._schema import FINAL_STATES, IN_DOUBT_STATES, MESSAGE_MAX, check_source

__all__ = ["PostgresRecords", "pg_outcome", "pg_text"]

_PAGE = 500
_APPLY_STATES = PayoutState.ALL | {"retry"}


class PostgresRecords:
    """The reading half of :class:`~doku_async.bulk.PostgresJournal` (one run of a database)."""

    run_id: str
    _db: PgConnection
    _claimed: dict[str, JournalEntry]

    def _read(self, fn: Any) -> Any:
        return self._db.call(self._db.with_conn(fn))

    # --- reading -------------------------------------------------------------------------

    def get(self, reference: str) -> JournalEntry | None:
        """The entry of ``reference``, if journaled (an item this runner just claimed is
        answered from the claim, which read it under its row lock)."""
        claimed = self._claimed.pop(reference, None)
        if claimed is not None:
            return claimed
        row = self._read(
            lambda c: c.fetchrow(
                SELECT + " WHERE run_id=$1 AND reference=$2", self.run_id, reference
            )
        )
        return None if row is None else entry_from_row(tuple(row))

    def find_by_reference_no(self, reference_no: str) -> JournalEntry | None:
        """The entry DOKU's ``referenceNo`` belongs to, or ``None``."""
        row = self._read(
            lambda c: c.fetchrow(
                SELECT + " WHERE run_id=$1 AND reference_no=$2 ORDER BY seq DESC LIMIT 1",
                self.run_id,
                reference_no,
            )
        )
        return None if row is None else entry_from_row(tuple(row))

    def _pages(self, where: str, params: tuple[object, ...]) -> Iterator[JournalEntry]:
        sql = (
            "SELECT seq, " + SELECT.removeprefix("SELECT ") + f" WHERE run_id=$1 AND seq > $2"
            f"{where} ORDER BY seq LIMIT {_PAGE}"
        )
        last = 0
        while True:
            rows = self._read(functools.partial(_fetch, sql, self.run_id, last, *params))
            if not rows:
                return
            last = int(rows[-1][0])
            for row in rows:
                yield entry_from_row(tuple(row)[1:])

    def entries(
        self, *, exclude_final: bool = False, states: Collection[str] | None = None
    ) -> Iterator[JournalEntry]:
        """Entries in input order, page by page; only ``states`` when given, without the
        final ones with ``exclude_final``."""
        where = ""
        params: list[object] = []
        if exclude_final:
            params.append(sorted(FINAL_STATES))
            where += f" AND NOT (state = ANY(${len(params) + 2}::text[]))"
        if states is not None:
            params.append(sorted(states))
            where += f" AND state = ANY(${len(params) + 2}::text[])"
        return self._pages(where, tuple(params))

    def entries_to_follow(self, *, succeeded_since: float | None = None) -> Iterator[JournalEntry]:
        """The entries DOKU may still change (see :meth:`Journal.entries_to_follow`)."""
        since = float("inf") if succeeded_since is None else succeeded_since
        where = " AND (state = ANY($3::text[]) OR (state = 'succeeded' AND updated >= $4))"
        return self._pages(where, (sorted(IN_DOUBT_STATES), since))

    def events(self, reference: str) -> list[JournalEvent]:
        """Every piece of news recorded about ``reference``, oldest first."""
        rows = self._read(
            lambda c: c.fetch(
                "SELECT at, source, state, code, message FROM doku_events "
                "WHERE run_id=$1 AND reference=$2 ORDER BY seq",
                self.run_id,
                reference,
            )
        )
        return [JournalEvent(float(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many items are in each state."""
        rows = self._read(
            lambda c: c.fetch(
                "SELECT state, count(*) FROM doku_items WHERE run_id=$1 GROUP BY state",
                self.run_id,
            )
        )
        return {str(s): int(n) for s, n in rows}

    def totals(self) -> dict[str, tuple[int, Decimal]]:
        """How many items, and what amount, are in each state."""
        rows = self._read(
            lambda c: c.fetch(
                "SELECT state, count(*), sum(amount::numeric) FROM doku_items "
                "WHERE run_id=$1 GROUP BY state",
                self.run_id,
            )
        )
        return {str(s): (int(n), Decimal(total).quantize(Decimal("0.01"))) for s, n, total in rows}

    # --- news ----------------------------------------------------------------------------

    def apply(
        self,
        reference: str,
        state: str,
        *,
        source: str,
        code: str = "",
        message: str = "",
        reference_no: str | None = None,
    ) -> bool:
        """Record news about a payout; its state moves only if newer (see
        :meth:`Journal.apply`). Returns whether the state changed."""
        if state not in _APPLY_STATES:
            raise ValueError(f"state must be a PayoutState word or 'retry', not {state!r}")
        check_source(source)
        code, message, reference_no = pg_outcome(code, message, reference_no)
        event = (uuid.uuid4().hex, self.run_id, reference, time.time(), source, state, code)
        return bool(self._read(lambda c: self._apply(c, event, message, reference_no)))

    async def _apply(
        self, conn: Any, event: tuple[Any, ...], message: str, reference_no: str | None
    ) -> bool:
        _, run_id, reference, now, _, state, code = event
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT state, owner IS NOT NULL AS held FROM doku_items "
                "WHERE run_id=$1 AND reference=$2 FOR UPDATE",
                run_id,
                reference,
            )
            if row is None:
                return False
            current = row["state"]
            moved = PayoutState.advances(str(current), state)  # as the SQLite journal's apply
            if state == "retry" and row["held"]:
                # A runner holds the item: its transfer may be on its way, not at DOKU yet.
                # "Nothing paid, send again" is not for a reconcile to say now; the holder
                # (or whoever takes the item over) settles it through check status.
                moved = False
            await conn.execute(EVENT, *event, message)
            await conn.execute(
                "UPDATE doku_items SET state=CASE WHEN $3 THEN $4 ELSE state END, "
                "code=CASE WHEN $3 THEN $5 ELSE code END, "
                "message=CASE WHEN $3 THEN $6 ELSE message END, "
                "updated=CASE WHEN $3 THEN $7 ELSE updated END, "
                "reference_no=COALESCE($8, reference_no) WHERE run_id=$1 AND reference=$2",
                run_id,
                reference,
                moved,
                state,
                code,
                message,
                now,
                reference_no,
            )
            return moved


def pg_text(value: str) -> str:
    """``value`` as PostgreSQL text can hold it: a NUL (which DOKU's text, coming from outside,
    may carry) becomes U+FFFD, so one odd answer never fails a group commit and the run."""
    return value.replace("\x00", "\ufffd")


def pg_outcome(code: str, message: str, reference_no: str | None) -> tuple[str, str, str | None]:
    """DOKU's code, message (cut to ``MESSAGE_MAX``) and ``referenceNo`` as the journal stores
    them (:func:`pg_text`)."""
    return (
        pg_text(code),
        pg_text(message[:MESSAGE_MAX]),
        None if reference_no is None else pg_text(reference_no),
    )


async def _fetch(sql: str, *args: Any) -> Any:
    *params, conn = args
    return await conn.fetch(sql, *params)
