"""The states of a payout, named once: what :class:`~doku_async.TransferResult`, the bulk
results, the journal, the CLI and the README all say.

A Kirim DOKU transfer answered ``2004300`` is only *accepted*: DOKU can keep it UNPAID and later
turn it SUCCESS **or** FAILED, and a paid one can later be REFUNDED. So a payout is *succeeded*
only once DOKU confirms it (check status ``00`` or a success notification); *pending* while DOKU
says initiated, paying or unpaid; *failed* when DOKU says failed or canceled (nothing paid);
*refunded* when its money came back, also after it had succeeded; *unknown* while it may have
been sent and nothing settled it.

States move forward only (:func:`advances`): an older or weaker piece of news never overwrites a
newer one, whatever order the transfer's answer, check status and notifications arrive in.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PayoutState"]


class PayoutState:
    """The state words, and how DOKU's codes map onto them. Plain strings, so journals, CSVs
    and JSON carry them as they are."""

    ACCEPTED: Final = "accepted"
    """DOKU accepted the transfer (``2004300``); not yet confirmed paid."""
    PENDING: Final = "pending"
    """DOKU says initiated, paying or unpaid (check status ``01``-``03``, notification ``20``)."""
    SUCCEEDED: Final = "succeeded"
    """DOKU confirmed the payout (check status ``00``, notification ``50``)."""
    FAILED: Final = "failed"
    """DOKU says failed or canceled (``05``, ``06``, notification ``35``): nothing paid."""
    REFUNDED: Final = "refunded"
    """The money came back (check status ``04``, notification ``40``, a Refund notification)."""
    UNKNOWN: Final = "unknown"
    """It may have been sent, and nothing settled it yet: settle it, never pay it anew."""

    ALL: Final = frozenset({ACCEPTED, PENDING, SUCCEEDED, FAILED, REFUNDED, UNKNOWN})
    OPEN: Final = frozenset({ACCEPTED, PENDING, UNKNOWN})
    """Not settled: follow them up (check status, reconcile, notifications)."""
    SETTLED: Final = frozenset({SUCCEEDED, FAILED, REFUNDED})
    """DOKU gave its word (a succeeded payout can still be refunded later)."""

    _CHECK_STATUS: Final = {
        "00": SUCCEEDED,
        "01": PENDING,
        "02": PENDING,
        "03": PENDING,
        "04": REFUNDED,
        "05": FAILED,
        "06": FAILED,
    }
    _NOTIFICATION: Final = {"50": SUCCEEDED, "20": PENDING, "35": FAILED, "40": REFUNDED}
    _RANK: Final = {UNKNOWN: 0, ACCEPTED: 1, PENDING: 2, SUCCEEDED: 3, FAILED: 3, REFUNDED: 4}

    @classmethod
    def from_check_status(cls, code: str) -> str | None:
        """The state for ``latestTransactionStatus`` ``code``; ``None`` for ``07`` (not found)
        and for codes DOKU has not documented."""
        return cls._CHECK_STATUS.get(code)

    @classmethod
    def from_notification(cls, status: str) -> str | None:
        """The state an Unpaid notification's ``transactionStatus`` claims (``"40"`` for a
        Refund notification); ``None`` for an undocumented one. A claim, not a confirmation:
        the legacy signature does not cover the body."""
        return cls._NOTIFICATION.get(status)

    @classmethod
    def advances(cls, current: str | None, new: str) -> bool:
        """Whether moving from ``current`` to ``new`` is news: later in the life of a transfer
        (accepted, pending, then succeeded or failed, then refunded). Succeeded and failed never
        replace each other, and nothing replaces refunded."""
        if current is None or current not in cls._RANK:
            return True
        if new == current:
            return False
        return cls._RANK.get(new, -1) > cls._RANK[current]
