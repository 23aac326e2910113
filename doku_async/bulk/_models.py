"""Items, per-item results and run summaries of a bulk payout."""

from __future__ import annotations

import re
from array import array
from decimal import Decimal
from typing import Final, Literal

import msgspec

from .. import _validation as v

__all__ = ["BulkProgress", "BulkSummary", "ItemResult", "ItemStatus", "PayoutItem", "payout_item"]

ItemStatus = Literal["succeeded", "failed", "pending", "unknown", "skipped"]

_REFERENCE = re.compile(r"[\x21-\x7e]+")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_UNSETTLED: Final = 3


class PayoutItem(msgspec.Struct, kw_only=True, frozen=True):
    """One payout: who gets how much, under your unique ``reference``.

    ``reference`` becomes the transfer's ``partnerReferenceNo``: the key that makes the run
    resumable and keeps anyone from being paid twice. Build items with :func:`payout_item` to
    validate them.
    """

    reference: str
    bank_code: str
    account_number: str
    account_name: str
    amount: Decimal
    remark: str | None = None
    line: int | None = None


def payout_item(
    *,
    reference: str,
    bank_code: str,
    account_number: str,
    account_name: str,
    amount: Decimal | int | str,
    remark: str | None = None,
    line: int | None = None,
) -> PayoutItem:
    """Validate and build a :class:`PayoutItem` (raises ``RequestValidationError``)."""
    return PayoutItem(
        reference=v.text(
            "reference", reference, max_len=64, pattern=_REFERENCE, allowed="visible ASCII"
        ),
        bank_code=v.digits("bank_code", bank_code, max_len=8),
        account_number=v.digits("account_number", account_number, max_len=32),
        account_name=v.text("account_name", account_name, max_len=100),
        amount=v.amount("amount", amount),
        remark=v.optional_text("remark", remark, max_len=100),
        line=line,
    )


class ItemResult(msgspec.Struct, kw_only=True):
    """What happened to one item.

    Attributes:
        reference: the item's reference (``partnerReferenceNo``).
        status: ``"succeeded"``, ``"failed"`` (nothing paid; ``code``/``message`` say why),
            ``"pending"`` (accepted, not final yet), ``"unknown"`` (may or may not be paid: see
            ``external_id`` and settle with check status or resume), ``"skipped"`` (a resumed
            run had settled it already; ``previous`` holds that status).
        amount: the item's amount.
        code: DOKU's response code or ``latestTransactionStatus``.
        message: DOKU's or the SDK's message.
        reference_no: DOKU's reference, when known.
        external_id: the transfer's ``X-EXTERNAL-ID``, when it was sent.
        latency: seconds spent on the item.
        line: the input line, when known.
        retryable: a failure that a later run may retry (nothing was paid).
        previous: for ``skipped`` items, the status recorded earlier.
    """

    reference: str
    status: str
    amount: Decimal
    code: str = ""
    message: str = ""
    reference_no: str | None = None
    external_id: str | None = None
    latency: float = 0.0
    line: int | None = None
    retryable: bool = False
    previous: str | None = None


class BulkProgress(msgspec.Struct, kw_only=True):
    """Counters handed to the progress callback after each item."""

    done: int
    total: int | None
    succeeded: int
    failed: int
    pending: int
    unknown: int
    skipped: int
    elapsed: float


class BulkSummary:
    """Totals of a run, with latency percentiles (kept in a compact array)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {
            "succeeded": 0,
            "failed": 0,
            "pending": 0,
            "unknown": 0,
            "skipped": 0,
        }
        self.amount_paid = Decimal("0.00")
        self.elapsed = 0.0
        self.total: int | None = None
        self.skipped_failed = 0
        """Skipped items that an earlier run had recorded as failed (still not paid)."""
        self._latencies = array("d")

    def add(self, result: ItemResult) -> None:
        """Count one result."""
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        if result.status == "skipped" and result.previous == "failed":
            self.skipped_failed += 1
        if result.status == "succeeded":
            self.amount_paid += result.amount
        if result.status != "skipped":
            self._latencies.append(result.latency)

    @property
    def done(self) -> int:
        """Items with a result."""
        return sum(self.counts.values())

    def progress(self) -> BulkProgress:
        """A snapshot for progress reporting."""
        c = self.counts
        return BulkProgress(
            done=self.done,
            total=self.total,
            succeeded=c["succeeded"],
            failed=c["failed"],
            pending=c["pending"],
            unknown=c["unknown"],
            skipped=c["skipped"],
            elapsed=self.elapsed,
        )

    def percentile(self, q: float) -> float:
        """Latency percentile in seconds (``q`` in 0-100); 0 without samples."""
        if not self._latencies:
            return 0.0
        ordered = sorted(self._latencies)
        index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
        return ordered[index]

    @property
    def throughput(self) -> float:
        """Processed items per second."""
        processed = len(self._latencies)
        return processed / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0: everything paid (or skipped as paid earlier); 1: some failed, now or in an earlier
        run; 3: some pending or unknown."""
        if self.counts["unknown"] or self.counts["pending"]:
            return EXIT_UNSETTLED
        if self.counts["failed"] or self.skipped_failed:
            return EXIT_FAILED
        return EXIT_OK

    def __repr__(self) -> str:
        return f"BulkSummary({self.counts}, paid={self.amount_paid})"
