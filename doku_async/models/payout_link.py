"""Payout Link bodies (``/v1/payout/initiate`` and ``/v1/payout/status``)."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Final

import msgspec

from ._nonsnap import NonSnapRequest, NonSnapResponse

__all__ = [
    "PayoutLinkData",
    "PayoutLinkInitiateRequest",
    "PayoutLinkResponse",
    "PayoutLinkStatus",
    "PayoutLinkStatusRequest",
]


class PayoutLinkStatus:
    """The eight documented Payout Link statuses. Statuses stay plain strings, so an
    undocumented one never breaks decoding; these helpers tolerate it."""

    PENDING: Final = "PENDING"
    EMAIL_SENT: Final = "EMAIL_SENT"
    EMAIL_LINK_OPENED: Final = "EMAIL_LINK_OPENED"
    PENDING_PROCESS: Final = "PENDING_PROCESS"
    CONFIRMED: Final = "CONFIRMED"
    COMPLETED: Final = "COMPLETED"
    FAILED: Final = "FAILED"
    EXPIRED: Final = "EXPIRED"

    ALL: Final = frozenset(
        {
            "PENDING",
            "EMAIL_SENT",
            "EMAIL_LINK_OPENED",
            "PENDING_PROCESS",
            "CONFIRMED",
            "COMPLETED",
            "FAILED",
            "EXPIRED",
        }
    )
    TERMINAL: Final = frozenset({"COMPLETED", "FAILED", "EXPIRED"})

    @classmethod
    def is_known(cls, status: str | None) -> bool:
        """Whether ``status`` is one of the eight documented statuses."""
        return status in cls.ALL

    @classmethod
    def is_terminal(cls, status: str | None) -> bool:
        """Whether ``status`` will not change any more (COMPLETED, FAILED, EXPIRED)."""
        return status in cls.TERMINAL


class PayoutLinkInitiateRequest(NonSnapRequest, kw_only=True):
    """Body of ``/v1/payout/initiate``; ``amount`` is sent as an exact JSON number."""

    amount: Decimal
    sender_name: str
    receiver_name: str
    receiver_phone_number: str
    receiver_email: str
    reference_id: str
    description: str | None = None
    currency: str | None = None


class PayoutLinkStatusRequest(NonSnapRequest, kw_only=True):
    """Body of ``/v1/payout/status``: ``transaction_id`` is the initiate's ``reference_id``."""

    transaction_id: str


class PayoutLinkData(msgspec.Struct, kw_only=True):
    """``data`` of a Payout Link answer."""

    __essential__: ClassVar[frozenset[str]] = frozenset(
        {"reference_id", "transaction_id", "status", "amount"}
    )

    reference_id: str | None = None
    transaction_id: str | None = None
    status: str | None = None
    state: str | None = None
    amount: Decimal | None = None
    sender_name: str | None = None
    receiver_name: str | None = None
    receiver_phone_number: str | None = None
    receiver_email: str | None = None
    created_time: str | None = None
    modified_time: str | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether :attr:`status` is COMPLETED, FAILED or EXPIRED."""
        return PayoutLinkStatus.is_terminal(self.status)


class PayoutLinkResponse(NonSnapResponse, kw_only=True):
    """A Payout Link answer (initiate or status)."""

    __essential__: ClassVar[frozenset[str]] = frozenset({"data"})

    status: str | None = None
    message: str | None = None
    timestamp: str | None = None
    data: PayoutLinkData | None = None

    def is_result(self) -> bool:
        """Whether ``data`` names a payout link."""
        return self.data is not None and bool(self.data.reference_id or self.data.transaction_id)

    @property
    def link_status(self) -> str | None:
        """The payout link's status (``data.status``), e.g. ``"PENDING"``."""
        return self.data.status if self.data is not None else None
