"""The record of every payout's state: news about a payout (from its transfer's answer, check
status, a notification, a reconcile, a resume) is kept as an event, and the item's state moves
only forward (:meth:`~doku_async.PayoutState.advances`), whatever order the news arrives in."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from decimal import Decimal

from .._states import PayoutState
from ._records import JournalEntry, JournalEvent, entry_from_row
from ._schema import EVENT, IN_DOUBT_STATES, MESSAGE_MAX, SELECT, check_source
from ._store import JournalStore

__all__ = ["JournalHistory"]

log = logging.getLogger("doku_async.bulk")

_APPLY_STATES = PayoutState.ALL | {"retry"}


class JournalHistory(JournalStore):
    """What a :class:`~doku_async.bulk.Journal` knows about each payout's life: events,
    :meth:`apply`, and the lookups that webhooks and reconciliation need."""

    def find_by_reference_no(self, reference_no: str) -> JournalEntry | None:
        """The entry whose transfer DOKU answered (or check status reported) with
        ``reference_no`` (DOKU's ``referenceNo``, all a notification names), or ``None``."""
        with self._lock:
            self.flush()  # a queued outcome may be the one carrying it
            row = self._db.execute(
                SELECT + " WHERE reference_no = ? ORDER BY rowid DESC LIMIT 1", (reference_no,)
            ).fetchone()
        return None if row is None else entry_from_row(row)

    def events(self, reference: str) -> list[JournalEvent]:
        """Every piece of news recorded about ``reference``, oldest first (empty if none, or
        if the item predates the journal's events)."""
        with self._lock:
            if reference in self._queued_refs:
                self.flush()
            rows = self._db.execute(
                "SELECT at, source, state, code, message FROM events WHERE reference = ? "
                "ORDER BY rowid",
                (reference,),
            ).fetchall()
        return [
            JournalEvent(float(at), str(source), str(state), str(code), str(message))
            for at, source, state, code, message in rows
        ]

    def entries_to_follow(self, *, succeeded_since: float | None = None) -> Iterator[JournalEntry]:
        """The entries DOKU may still change: those whose transfer may have been sent and is
        not settled (``sending``, ``unknown``, ``accepted``, ``pending``), and, with
        ``succeeded_since`` (unix time), the ``succeeded`` ones whose state changed since
        (a paid transfer can still be refunded). Read page by page, so the caller may write to
        the journal between them."""
        doubt = sorted(IN_DOUBT_STATES)
        sql = (
            "SELECT rowid, " + SELECT.removeprefix("SELECT ") + " WHERE rowid > ? AND "
            f"(state IN ({','.join('?' * len(doubt))}) OR (state = 'succeeded' AND updated >= ?))"
            " ORDER BY rowid LIMIT 500"
        )
        since = float("inf") if succeeded_since is None else succeeded_since
        last = 0
        while True:
            with self._lock:
                self.flush()
                rows = self._db.execute(sql, (last, *doubt, since)).fetchall()
            if not rows:
                return
            last = int(rows[-1][0])
            for row in rows:
                yield entry_from_row(row[1:])

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
        """Record news about a journaled payout; return whether its state changed.

        Always records an event (:meth:`events`); the item's state (with ``code`` and
        ``message``) moves to ``state`` only if :meth:`PayoutState.advances` says it is newer,
        so an older state never overwrites a newer one, whatever order news arrives in.
        DOKU's ``reference_no`` is kept in any case. An unknown ``reference`` records nothing
        and returns ``False`` (logged at WARNING).

        Args:
            reference: the payout's reference (``partnerReferenceNo``).
            state: a :class:`~doku_async.PayoutState` word, or ``"retry"`` (DOKU does not have
                the transfer: nothing paid, a resume pays it).
            source: ``"answer"``, ``"check_status"``, ``"notification"``, ``"reconcile"`` or
                ``"resume"``.
            code: DOKU's code (response code or ``latestTransactionStatus``).
            message: DOKU's or the SDK's message (cut to 500 characters).
            reference_no: DOKU's ``referenceNo``, when the news carries it.

        Raises:
            ValueError: ``state`` or ``source`` is not one of those words.
        """
        if state not in _APPLY_STATES:
            raise ValueError(f"state must be a PayoutState word or 'retry', not {state!r}")
        check_source(source)
        now = time.time()
        message = message[:MESSAGE_MAX]
        with self._transaction() as db:
            row = db.execute("SELECT state FROM items WHERE reference = ?", (reference,)).fetchone()
            if row is None:
                log.warning("%s news about %s, which is not in the journal", source, reference)
                return False
            moved = PayoutState.advances(str(row[0]), state)
            db.execute(EVENT, (reference, now, source, state, code, message))
            if moved:
                db.execute(
                    "UPDATE items SET state=?, code=?, message=?, updated=?, "
                    "reference_no=COALESCE(?, reference_no) WHERE reference=?",
                    (state, code, message, now, reference_no, reference),
                )
            elif reference_no:
                db.execute(
                    "UPDATE items SET reference_no=? WHERE reference=?", (reference_no, reference)
                )
        return moved

    def totals(self) -> dict[str, tuple[int, Decimal]]:
        """How many items, and what amount, are in each state (the whole journal)."""
        found: dict[str, tuple[int, Decimal]] = {}
        with self._lock:
            self.flush()
            cursor = self._db.execute("SELECT state, amount FROM items")
            while rows := cursor.fetchmany(2000):
                for state, amount in rows:
                    count, total = found.get(state, (0, Decimal(0)))
                    found[state] = (count + 1, total + Decimal(amount))
        return found
