"""``doku.rdl``: RDL (Rekening Dana Lender) disbursements."""

from __future__ import annotations

import re
from decimal import Decimal

from .. import _serde
from .. import _validation as v
from ..models.rdl import (
    RdlAccountDestination,
    RdlDisbursementRequest,
    RdlDisbursementResponse,
    RdlSourceAccount,
    RdlTransaction,
)
from ._nonsnap_base import NonSnapResource, request_id_or_new

__all__ = ["Rdl"]

_TRANSACTION_ID = re.compile(r"[A-Za-z0-9\-:._]+")


class Rdl(NonSnapResource):
    """RDL disbursements. Reach it as ``doku.rdl``."""

    async def disburse(
        self,
        *,
        transaction_id: str,
        amount: Decimal | int | str,
        description: str,
        source_account_id: str,
        destination_bank_code: str,
        destination_account_number: str,
        destination_account_name: str,
        destination_address: str,
        request_id: str | None = None,
    ) -> RdlDisbursementResponse:
        """Disburse from an RDL account to a bank account.

        Args:
            transaction_id: your unique id (at most 64; letters, digits and ``- : . _``).
            amount: a whole amount between 10,000 and 999,999,999,999.
            description: at most 256 characters.
            source_account_id: the RDL account id DOKU gave your customer (at most 100).
            destination_bank_code: the bank's code, e.g. ``"BNINIDJA"`` (at most 50).
            destination_account_number: at most 100 characters.
            destination_account_name: the account holder's name (at most 50).
            destination_address: address or city (at most 50).
            request_id: DOKU's idempotency key (at most 128); default a fresh UUID4.

        Returns:
            The answer (``transaction.status`` starts as ``"PENDING"``); ``replayed`` marks
            DOKU's 409 replay of this ``request_id``.
        """
        request = RdlDisbursementRequest(
            transaction=RdlTransaction(
                id=v.text(
                    "transaction_id",
                    transaction_id,
                    max_len=64,
                    pattern=_TRANSACTION_ID,
                    allowed="letters, digits and - : . _",
                ),
                amount=v.whole_amount("amount", amount, minimum=10_000, maximum=999_999_999_999),
                description=v.text("description", description, max_len=256),
            ),
            source_account=RdlSourceAccount(
                account_id=v.text("source_account_id", source_account_id, max_len=100)
            ),
            account_destination=RdlAccountDestination(
                code=v.text("destination_bank_code", destination_bank_code, max_len=50),
                account_bank_number=v.text(
                    "destination_account_number", destination_account_number, max_len=100
                ),
                account_bank_name=v.text(
                    "destination_account_name", destination_account_name, max_len=50
                ),
                address=v.text("destination_address", destination_address, max_len=50),
            ),
        )
        return await self._requester.call(
            self._ops.rdl,
            _serde.encode_numbers(request),
            RdlDisbursementResponse,
            request_id=request_id_or_new(request_id),
            references={"transaction.id": request.transaction.id},
            matches=lambda r: (
                r.transaction is not None
                and r.transaction.id == request.transaction.id
                and (
                    r.transaction.amount is None
                    or r.transaction.amount == request.transaction.amount
                )
            ),
        )
