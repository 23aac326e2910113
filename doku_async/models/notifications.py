"""Kirim DOKU notification bodies (DOKU calls you)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import ClassVar, Final

import msgspec

from ._base import normalize_code

__all__ = [
    "Notification",
    "NotificationStatus",
    "RefundNotification",
    "UnpaidNotification",
    "parse_process_date",
]

_WIB = timezone(timedelta(hours=7), "WIB")
_PROCESS_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})\s*(?:'T'|T|\s)\s*(\d{2}):(\d{2})(?::(\d{2}))?(?:[.,]\d+)?\s*(Z|[+-]\d{2}:?\d{2})?"
)


def parse_process_date(
    text: str | int | float | None, *, assume: timezone = _WIB
) -> datetime | None:
    """Parse DOKU's ``processDate`` in its odd forms (``2024-01-12'T'07:30:12``,
    ``2024-01-12T07:30:12``, ``2024-01-12 07:30:12``, optional fraction and offset), or as
    epoch milliseconds (a JSON number or its digits, the form of DOKU's older KIRIMDOKU page).

    A date without an offset is taken as Jakarta time (WIB, +07:00) unless ``assume`` says
    otherwise. Returns ``None`` for a value it cannot read; never raises.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        return _from_epoch_millis(text)
    if not text or not isinstance(text, str):
        return None
    if text.strip().isdigit():
        return _from_epoch_millis(int(text.strip()))
    match = _PROCESS_DATE.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, offset = match.groups()
    tz: timezone = assume
    try:
        if offset == "Z":
            tz = UTC
        elif offset:
            sign = 1 if offset[0] == "+" else -1
            digits = offset[1:].replace(":", "")
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=tz
        )
    except ValueError:
        return None


def _from_epoch_millis(millis: int | float) -> datetime | None:
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


class NotificationStatus:
    """``transactionStatus`` values of an Unpaid notification; unknown codes are tolerated."""

    SUCCESS: Final = "50"
    FAILED: Final = "35"
    UNPAID: Final = "20"
    REFUNDED: Final = "40"

    DESCRIPTIONS: Final = {"50": "success", "35": "failed", "20": "unpaid", "40": "refunded"}
    FINAL: Final = frozenset({"50", "35", "40"})

    @classmethod
    def describe(cls, code: str) -> str:
        """A word for ``code``; ``"unknown (XX)"`` for undocumented codes."""
        return cls.DESCRIPTIONS.get(code, f"unknown ({code})")

    @classmethod
    def is_final(cls, code: str) -> bool:
        """Whether ``code`` is success, failed or refunded."""
        return code in cls.FINAL


class _NotificationBase(msgspec.Struct, rename="camel", kw_only=True):
    # Only the transaction id is essential: a notification is a trigger, and every other
    # field may come in any JSON type (see ``doku_async._serde.decode_answer``).
    __essential__: ClassVar[frozenset[str]] = frozenset({"transaction_id"})

    transaction_id: str
    activity_code: str | int | None = None
    message: str | None = None
    process_date: str | int | float | None = None
    """As sent: text such as ``2024-01-12'T'07:30:12``, or epoch milliseconds; read
    :attr:`processed_at`."""
    request_id: str = ""
    """The ``requestId`` header it arrived with (set by the verifier, not the body)."""
    agent_key: str = ""
    """The ``agentKey`` header it arrived with (set by the verifier, not the body)."""

    @property
    def processed_at(self) -> datetime | None:
        """``processDate`` parsed, see :func:`parse_process_date`; ``None`` if unreadable."""
        return parse_process_date(self.process_date)


class UnpaidNotification(_NotificationBase, kw_only=True):
    """An Unpaid notification: a transfer went UNPAID, then SUCCESS or FAILED.

    ``transaction_status`` is ``"50"`` success, ``"35"`` failed, ``"20"`` unpaid or ``"40"``
    refunded (see :class:`NotificationStatus`); numbers are accepted and kept as text.
    """

    invoice_number: str | None = None
    transaction_status: str | int | None = None
    send_trx_id: str | None = None
    created_time: str | int | None = None

    @property
    def status(self) -> str:
        """``transactionStatus`` as text."""
        return normalize_code(self.transaction_status, 2)

    @property
    def created_at(self) -> datetime | None:
        """``createdTime`` (epoch milliseconds, text or number) as a UTC datetime."""
        try:
            millis = int(self.created_time) if self.created_time is not None else None
        except ValueError:
            return None
        return None if millis is None else _from_epoch_millis(millis)

    @property
    def kind(self) -> str:
        """``"unpaid"``."""
        return "unpaid"


class RefundNotification(_NotificationBase, kw_only=True):
    """A Refund notification: a transfer's money came back."""

    @property
    def status(self) -> str:
        """Always ``"40"`` (refunded)."""
        return NotificationStatus.REFUNDED

    @property
    def kind(self) -> str:
        """``"refund"``."""
        return "refund"


Notification = UnpaidNotification | RefundNotification
"""Either notification type."""
