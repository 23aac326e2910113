"""``doku.transfers``: moving balance between your DOKU sub-accounts."""

from __future__ import annotations

from decimal import Decimal

from .. import _serde
from .. import _validation as v
from ..models.transfers import SubAccountTransfer, TransferCreateRequest, TransferCreateResponse
from ._nonsnap_base import NonSnapResource, request_id_or_new

__all__ = ["Transfers"]


class Transfers(NonSnapResource):
    """Sub-account to sub-account transfers. Reach it as ``doku.transfers``."""

    async def create(
        self,
        *,
        origin: str,
        destination: str,
        amount: Decimal | int | str,
        invoice_number: str,
        request_id: str | None = None,
    ) -> TransferCreateResponse:
        """Transfer ``amount`` from sub-account ``origin`` to ``destination``.

        Args:
            origin: source sub-account id, e.g. ``"SAC-0000-0000000000001"`` (at most 40).
            destination: destination sub-account id (at most 40).
            amount: a whole amount, at most 12 digits (sent as a JSON integer).
            invoice_number: your unique reconciliation key (at most 100 characters).
            request_id: DOKU's idempotency key (at most 128); default a fresh UUID4. Pass
                your own to make a resend after a crash safe.

        Returns:
            The answer; ``replayed`` marks DOKU's 409 replay of this ``request_id``.
        """
        request = TransferCreateRequest(
            transfer=SubAccountTransfer(
                origin=v.text("origin", origin, max_len=40),
                destination=v.text("destination", destination, max_len=40),
                amount=v.whole_amount("amount", amount, minimum=1, maximum=999_999_999_999),
                invoice_number=v.text("invoice_number", invoice_number, max_len=100),
            )
        )
        return await self._requester.call(
            self._ops.transfers,
            _serde.encode_numbers(request),
            TransferCreateResponse,
            request_id=request_id_or_new(request_id),
            references={"invoice_number": request.transfer.invoice_number},
            matches=lambda r: (
                r.transfer is not None
                and r.transfer.invoice_number == request.transfer.invoice_number
                and (r.transfer.amount is None or r.transfer.amount == request.transfer.amount)
            ),
        )
