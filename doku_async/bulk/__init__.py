"""Bulk payouts: a resumable runner over :class:`~doku_async.DokuClient` and its journal."""

from ._csv import CsvInputError, ResultWriter, parse_payouts, read_payouts
from ._journal import FINAL_STATES, Journal, JournalEntry
from ._models import BulkProgress, BulkSummary, ItemResult, ItemStatus, PayoutItem, payout_item
from ._ratelimit import RateLimiter
from ._runner import BulkRunner, PreflightError

__all__ = [
    "FINAL_STATES",
    "BulkProgress",
    "BulkRunner",
    "BulkSummary",
    "CsvInputError",
    "ItemResult",
    "ItemStatus",
    "Journal",
    "JournalEntry",
    "PayoutItem",
    "PreflightError",
    "RateLimiter",
    "ResultWriter",
    "parse_payouts",
    "payout_item",
    "read_payouts",
]
