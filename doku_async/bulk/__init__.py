"""Bulk payouts: a resumable runner over :class:`~doku_async.DokuClient` and its journal."""

from ._csv import (
    CsvInputError,
    PayoutFile,
    ResultWriter,
    parse_payouts,
    read_payout_file,
    read_payouts,
)
from ._fleet import claimed_items, run_shared
from ._journal import (
    FINAL_STATES,
    IN_DOUBT_STATES,
    IncompletePlanError,
    Journal,
    JournalEntry,
    JournalEvent,
    PlanMismatchError,
    PlanRecord,
    PlanSource,
    backup_journal,
)
from ._lock import JournalLock, JournalLockedError, LockHolder
from ._models import BulkProgress, BulkSummary, ItemResult, ItemStatus, PayoutItem, payout_item
from ._postgres import PostgresJournal, migrate_url
from ._ratelimit import RateLimiter
from ._reconcile import DEFAULT_REFUND_WINDOW, ReconcileChange, ReconcileReport, reconcile
from ._runner import BulkRunner, PreflightError
from ._storage import JournalBackend, JournalDatabaseError, JournalStorage, LeaseLostError

__all__ = [
    "DEFAULT_REFUND_WINDOW",
    "FINAL_STATES",
    "IN_DOUBT_STATES",
    "BulkProgress",
    "BulkRunner",
    "BulkSummary",
    "CsvInputError",
    "IncompletePlanError",
    "ItemResult",
    "ItemStatus",
    "Journal",
    "JournalBackend",
    "JournalDatabaseError",
    "JournalEntry",
    "JournalEvent",
    "JournalLock",
    "JournalLockedError",
    "JournalStorage",
    "LeaseLostError",
    "LockHolder",
    "PayoutFile",
    "PayoutItem",
    "PlanMismatchError",
    "PlanRecord",
    "PlanSource",
    "PostgresJournal",
    "PreflightError",
    "RateLimiter",
    "ReconcileChange",
    "ReconcileReport",
    "ResultWriter",
    "backup_journal",
    "claimed_items",
    "migrate_url",
    "parse_payouts",
    "payout_item",
    "read_payout_file",
    "read_payouts",
    "reconcile",
    "run_shared",
]
