"""Items, per-item results and run summaries of a bulk payout."""

from __future__ import annotations

import re
from array import array
from decimal import Decimal
from typing import Final, Literal

import msgspec

from .. import _validation as v
from .._banks import BankCodes

__all__ = ["BulkProgress", "BulkSummary", "ItemResult", "ItemStatus", "PayoutItem", "payout_item"]

ItemStatus = Literal["succeeded", "accepted", "pending", "failed", "refunded", "unknown", "skipped"]

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
    bank_codes: BankCodes | None = None,
) -> PayoutItem:
    """Validate and build a :class:`PayoutItem` (raises ``RequestValidationError``).

    ``bank_code`` must be a three-digit code of ``bank_codes`` (default: the SDK's table,
    :meth:`BankCodes.default`; the runner passes its client's ``bank_codes``).
    """
    return PayoutItem(
        reference=v.text(
            "reference", reference, max_len=64, pattern=_REFERENCE, allowed="visible ASCII"
        ),
        bank_code=v.bank_code("bank_code", bank_code, bank_codes or BankCodes.default()),
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
        status: a :class:`~doku_async.PayoutState` word or ``"skipped"``: ``"succeeded"``
            (DOKU confirmed it paid), ``"accepted"`` (DOKU accepted it, not confirmed yet),
            ``"pending"`` (DOKU says initiated, paying or unpaid: it can still fail),
            ``"failed"`` (nothing paid; ``code``/``message`` say why), ``"refunded"`` (paid,
            and the money came back), ``"unknown"`` (may or may not be paid: see
            ``external_id`` and settle with check status, reconcile or resume), ``"skipped"``
            (a resumed run had settled it already; ``previous`` holds that status).
        amount: the item's amount.
        code: DOKU's response code or ``latestTransactionStatus``.
        message: DOKU's or the SDK's message.
        reference_no: DOKU's reference, when known.
        external_id: the transfer's ``X-EXTERNAL-ID``, when it was sent.
        latency: seconds spent on the item.
        line: the input line, when known.
        retryable: a failure that a later run may retry (nothing was paid).
        previous: for ``skipped`` items, the status recorded earlier.
        bank_code: the item's bank code; bank_name: its name from the bank-code table.
        already_paid: DOKU already held a transfer under this reference, made before this run
            (the journal was lost, or restored from a copy missing its latest transactions):
            it is ``succeeded`` (paid) but was not paid by this run, and was not paid again.
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
    already_paid: bool = False
    bank_code: str = ""
    """The item's bank code."""
    bank_name: str = ""
    """The bank's name from the client's :class:`~doku_async.BankCodes` table (``""`` when
    the code is not in it)."""


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
    accepted: int = 0
    refunded: int = 0
    already_paid: int = 0
    """Of ``succeeded``: items DOKU had paid before this run (not paid by it)."""


class BulkSummary:
    """Totals of a run, with latency percentiles (kept in a compact array)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {
            "succeeded": 0,
            "accepted": 0,
            "pending": 0,
            "failed": 0,
            "refunded": 0,
            "unknown": 0,
            "skipped": 0,
        }
        self.amount_paid = Decimal("0.00")
        """What the succeeded items of this run paid (items paid before it excluded)."""
        self.elapsed = 0.0
        self.total: int | None = None
        self.skipped_failed = 0
        """Skipped items that an earlier run had recorded as failed (still not paid)."""
        self.already_paid = 0
        """Succeeded items DOKU had already paid before this run (counted in ``succeeded``,
        not in :attr:`amount_paid`)."""
        self.amount_already_paid = Decimal("0.00")
        """What those items amount to (paid earlier, not by this run)."""
        self._latencies = array("d")

    def add(self, result: ItemResult) -> None:
        """Count one result."""
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        if result.status == "skipped" and result.previous in ("failed", "refunded"):
            self.skipped_failed += 1
        if result.status == "succeeded":
            if result.already_paid:
                self.already_paid += 1
                self.amount_already_paid += result.amount
            else:
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
            accepted=c["accepted"],
            refunded=c["refunded"],
            already_paid=self.already_paid,
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
        """0 only when every item is confirmed paid (or skipped as paid earlier); 3: some are
        accepted, pending or unknown (not settled: reconcile); 1: some failed or were refunded,
        now or in an earlier run (nothing paid for them, or the money came back)."""
        c = self.counts
        if c["unknown"] or c["pending"] or c["accepted"]:
            return EXIT_UNSETTLED
        if c["failed"] or c["refunded"] or self.skipped_failed:
            return EXIT_FAILED
        return EXIT_OK

    def __repr__(self) -> str:
        return f"BulkSummary({self.counts}, paid={self.amount_paid})"
