"""What the journal hands out: its entries and their events."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ._models import PayoutItem

__all__ = ["JournalEntry", "JournalEvent"]


@dataclass(frozen=True, slots=True)
class JournalEvent:
    """One piece of news about a payout, as the journal recorded it.

    Attributes:
        at: when it was recorded (unix time).
        source: where it came from: ``"answer"`` (the transfer's own answer, or the runner's
            refusal before sending), ``"check_status"`` (the check status that confirmed the
            transfer), ``"notification"`` (a notification, confirmed through check status),
            ``"reconcile"`` (``payouts reconcile``), ``"resume"`` (a resumed run settling an
            item through check status).
        state: the state that news claims (the item's state moves to it only if it is newer,
            see :meth:`~doku_async.PayoutState.advances`).
        code: DOKU's code (response code or ``latestTransactionStatus``), or ``""``.
        message: DOKU's or the SDK's message, or ``""``.
    """

    at: float
    source: str
    state: str
    code: str
    message: str


class JournalEntry:
    """One journaled item and its last known state.

    Attributes:
        item: the payout.
        state: the journal's state word (a :class:`~doku_async.PayoutState` word, or
            ``planned``, ``retry``, ``sending``).
        external_id: the ``X-EXTERNAL-ID`` of its last transfer, if sent.
        reference_no: DOKU's ``referenceNo``, once DOKU answered or check status reported it.
        code: DOKU's code behind ``state``.
        message: DOKU's or the SDK's message behind ``state``.
        session_id: the account inquiry's ``sessionId`` its last transfer carried.
        updated: when ``state`` last changed (unix time).
    """

    __slots__ = (
        "code",
        "external_id",
        "item",
        "message",
        "reference_no",
        "session_id",
        "state",
        "updated",
    )

    def __init__(
        self,
        item: PayoutItem,
        state: str,
        external_id: str | None,
        reference_no: str | None,
        code: str | None,
        message: str | None,
        *,
        session_id: str | None = None,
        updated: float = 0.0,
    ) -> None:
        self.item = item
        self.state = state
        self.external_id = external_id
        self.reference_no = reference_no
        self.code = code or ""
        self.message = message or ""
        self.session_id = session_id
        self.updated = updated

    def __repr__(self) -> str:
        return f"JournalEntry({self.item.reference!r}, state={self.state!r})"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def entry_from_row(row: tuple[object, ...]) -> JournalEntry:
    """A :class:`JournalEntry` from a row of ``_schema.SELECT``."""
    (reference, line, bank, account, name, amount, remark, state, ext, ref_no, code, msg) = row[:12]
    session_id, updated = row[12], row[13]
    item = PayoutItem(
        reference=str(reference),
        bank_code=str(bank),
        account_number=str(account),
        account_name=str(name),
        amount=Decimal(str(amount)),
        remark=_text(remark),
        line=None if line is None else int(str(line)),
    )
    return JournalEntry(
        item,
        str(state),
        _text(ext),
        _text(ref_no),
        _text(code),
        _text(msg),
        session_id=_text(session_id),
        updated=float(str(updated or 0)),
    )
