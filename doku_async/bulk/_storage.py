"""What the bulk runner needs from a journal, as a protocol: the SQLite :class:`Journal` and the
PostgreSQL :class:`PostgresJournal` both provide it, so the runner and the per-item flow work
with either (and a third backend needs no runner change).

:class:`JournalStorage` is the small part the runner and the per-item flow use (a lookup, the
sending mark that must be committed before the transfer goes out, the outcome queued for the
group commit, the flush at the end). :class:`JournalBackend` adds what the command line,
reconciliation and the webhooks' ``follow_journal`` read and write.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Iterable, Iterator
from decimal import Decimal
from typing import Protocol, runtime_checkable

from .._exceptions import DokuError
from ._models import PayoutItem
from ._plan import PlanRecord, PlanSource
from ._records import JournalEntry, JournalEvent

__all__ = [
    "JournalBackend",
    "JournalDatabaseError",
    "JournalStorage",
    "LeaseLostError",
    "is_database_url",
]


@runtime_checkable
class JournalStorage(Protocol):
    """The journal as the bulk runner and its per-item flow use it."""

    def get(self, reference: str) -> JournalEntry | None:
        """The entry of ``reference``, if journaled."""
        ...

    async def mark_sending_grouped(
        self, item: PayoutItem, external_id: str, *, session_id: str | None = None
    ) -> None:
        """Record that ``item``'s transfer goes out with ``external_id``; return only once that
        record is committed (raise if it could not be: the transfer must not be sent)."""
        ...

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
        """Queue an outcome (and its event) for the next group commit, without waiting."""
        ...

    def flush(self) -> None:
        """Commit what is queued now."""
        ...

    def close(self) -> None:
        """Commit what is queued and release the journal."""
        ...


@runtime_checkable
class JournalBackend(JournalStorage, Protocol):
    """The whole journal: what the command line, reconciliation and webhooks also use."""

    def entries(
        self, *, exclude_final: bool = False, states: Collection[str] | None = None
    ) -> Iterator[JournalEntry]:
        """Entries in input order."""
        ...

    def events(self, reference: str) -> list[JournalEvent]:
        """Every piece of news recorded about ``reference``, oldest first."""
        ...

    def entries_to_follow(self, *, succeeded_since: float | None = None) -> Iterator[JournalEntry]:
        """The entries DOKU may still change."""
        ...

    def find_by_reference_no(self, reference_no: str) -> JournalEntry | None:
        """The entry DOKU's ``referenceNo`` belongs to."""
        ...

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
        """Record news about a payout; its state moves only forward."""
        ...

    def totals(self) -> dict[str, tuple[int, Decimal]]:
        """Count and amount per state."""
        ...

    def counts(self) -> dict[str, int]:
        """Count per state."""
        ...

    def meta(self) -> dict[str, str]:
        """The run's remembered settings."""
        ...

    def set_meta(self, **values: str) -> None:
        """Remember run settings."""
        ...

    def plan(self, items: Iterable[PayoutItem], *, source: PlanSource | None = None) -> int:
        """Record the items not journaled yet as ``planned``."""
        ...

    def plan_record(self) -> PlanRecord | None:
        """The complete plan, if recorded."""
        ...

    def check_plan_complete(self) -> PlanRecord:
        """The plan record, after checking every planned row is journaled."""
        ...


class JournalDatabaseError(sqlite3.DatabaseError):
    """A journal database failed: it could not be reached within its retry budget, or it
    refused a statement.

    A subclass of :class:`sqlite3.DatabaseError` on purpose: every place that treats a journal
    failure (the run stops, nothing more is sent, the command line exits 6) treats a
    PostgreSQL journal's the same way. The message never carries the database password.
    """


class LeaseLostError(DokuError):
    """Another runner holds this item (its lease on it is live): this runner does not send it."""


def is_database_url(journal: object) -> bool:
    """Whether ``journal`` names a PostgreSQL journal (``postgresql://`` or ``postgres://``)."""
    if isinstance(journal, os.PathLike):
        return False
    # The scheme is case-insensitive (asyncpg reads it with urllib, which lowercases it).
    return isinstance(journal, str) and journal.lower().startswith(("postgresql://", "postgres://"))
