"""RDL disbursement bodies (``/sac-rdl/v1/rdl-disbursements``)."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

import msgspec

from ._nonsnap import NonSnapRequest, NonSnapResponse

__all__ = [
    "RdlAccountDestination",
    "RdlDisbursementRequest",
    "RdlDisbursementResponse",
    "RdlSourceAccount",
    "RdlTransaction",
    "RdlTransactionData",
]


class RdlTransaction(NonSnapRequest, kw_only=True):
    """``transaction`` of a request."""

    id: str
    amount: int
    description: str


class RdlSourceAccount(NonSnapRequest, kw_only=True):
    """``source_account``: the customer's RDL account id given by DOKU."""

    account_id: str


class RdlAccountDestination(NonSnapRequest, kw_only=True):
    """``account_destination``: the beneficiary bank account."""

    code: str
    account_bank_number: str
    account_bank_name: str
    address: str


class RdlDisbursementRequest(NonSnapRequest, kw_only=True):
    """Body of an RDL disbursement."""

    transaction: RdlTransaction
    source_account: RdlSourceAccount
    account_destination: RdlAccountDestination


class RdlTransactionData(msgspec.Struct, kw_only=True):
    """``transaction`` of an answer."""

    __essential__: ClassVar[frozenset[str]] = frozenset({"id", "status", "amount"})

    id: str | None = None
    amount: Decimal | None = None
    description: str | None = None
    status: str | None = None
    create_date: str | None = None
    update_date: str | None = None


class RdlDisbursementResponse(NonSnapResponse, kw_only=True):
    """Answer of an RDL disbursement; the source and destination are echoed as sent."""

    __essential__: ClassVar[frozenset[str]] = frozenset({"transaction"})

    transaction: RdlTransactionData | None = None
    source_account: dict[str, str] | None = None
    account_destination: dict[str, str] | None = None

    def is_result(self) -> bool:
        """Whether the answer carries a ``transaction``."""
        return self.transaction is not None
