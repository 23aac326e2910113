"""Sub-account Transfers bodies (``/sac-merchant/v1/transfers``)."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

import msgspec

from ._nonsnap import NonSnapRequest, NonSnapResponse

__all__ = [
    "SubAccountTransfer",
    "SubAccountTransferData",
    "TransferCreateRequest",
    "TransferCreateResponse",
]


class SubAccountTransfer(NonSnapRequest, kw_only=True):
    """The ``transfer`` object of a request."""

    origin: str
    destination: str
    amount: int
    invoice_number: str


class TransferCreateRequest(NonSnapRequest, kw_only=True):
    """Body of a sub-account transfer."""

    transfer: SubAccountTransfer


class SubAccountTransferData(msgspec.Struct, kw_only=True):
    """The ``transfer`` object of an answer."""

    __essential__: ClassVar[frozenset[str]] = frozenset({"invoice_number", "status", "amount"})

    invoice_number: str | None = None
    origin: str | None = None
    destination: str | None = None
    amount: Decimal | None = None
    status: str | None = None
    created: str | None = None


class TransferCreateResponse(NonSnapResponse, kw_only=True):
    """Answer of a sub-account transfer."""

    __essential__: ClassVar[frozenset[str]] = frozenset({"transfer"})

    transfer: SubAccountTransferData | None = None

    def is_result(self) -> bool:
        """Whether the answer carries a ``transfer``."""
        return self.transfer is not None
