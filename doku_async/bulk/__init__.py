"""Bulk payouts: a resumable runner over :class:`~doku_async.DokuClient` and its journal."""

from ._journal import FINAL_STATES, Journal, JournalEntry
from ._models import BulkProgress, BulkSummary, ItemResult, ItemStatus, PayoutItem, payout_item
from ._ratelimit import RateLimiter
from ._runner import BulkRunner, PreflightError

__all__ = [
    "FINAL_STATES",
    "BulkProgress",
    "BulkRunner",
    "BulkSummary",
    "ItemResult",
    "ItemStatus",
    "Journal",
    "JournalEntry",
    "PayoutItem",
    "PreflightError",
    "RateLimiter",
    "payout_item",
]
