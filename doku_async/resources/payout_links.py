"""``doku.payout_links``: Payout Link initiate and status."""

from __future__ import annotations

import re
from decimal import Decimal

from .. import _serde
from .. import _validation as v
from .._exceptions import DokuAPIError, DokuError
from ..models.payout_link import (
    PayoutLinkInitiateRequest,
    PayoutLinkResponse,
    PayoutLinkStatusRequest,
)
from ._nonsnap_base import NonSnapResource, request_id_or_new

__all__ = ["PayoutLinks"]

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CURRENCY = re.compile(r"[A-Z]{1,3}")


class PayoutLinks(NonSnapResource):
    """Payout Link: DOKU emails the recipient a link to claim the money with their own bank
    details. Reach it as ``doku.payout_links``."""

    async def initiate(
        self,
        *,
        reference_id: str,
        amount: Decimal | int | str,
        sender_name: str,
        receiver_name: str,
        receiver_phone_number: str,
        receiver_email: str,
        description: str | None = None,
        currency: str | None = None,
        request_id: str | None = None,
    ) -> PayoutLinkResponse:
        """Create a payout link.

        Args:
            reference_id: your unique reference (1-30 characters); also the status key.
            amount: positive, at most 2 decimals; sent as an exact JSON number.
            sender_name: 1-50 characters.
            receiver_name: 1-50 characters.
            receiver_phone_number: ``62...`` form, 9-14 digits.
            receiver_email: 1-50 characters.
            description: optional, 1-30 characters.
            currency: optional, at most 3 letters (``"IDR"``).
            request_id: DOKU's idempotency key; pass your own to make a retry after a crash
                safe (at most 128 characters). Default: a fresh UUID4.

        Returns:
            The answer; ``replayed`` is true when DOKU answered 409 with the original result
            of this ``request_id``; ``resolved_by_status`` when the result came from a status
            call after the answers were lost.
        """
        request = PayoutLinkInitiateRequest(
            amount=v.amount("amount", amount, maximum=Decimal("9999999999999999.99")),
            sender_name=v.text("sender_name", sender_name, max_len=50),
            receiver_name=v.text("receiver_name", receiver_name, max_len=50),
            receiver_phone_number=v.phone("receiver_phone_number", receiver_phone_number),
            receiver_email=v.text(
                "receiver_email", receiver_email, max_len=50, pattern=_EMAIL, allowed="an email"
            ),
            reference_id=v.text("reference_id", reference_id, max_len=30),
            description=v.optional_text("description", description, max_len=30),
            currency=v.optional_text(
                "currency", currency, max_len=3, pattern=_CURRENCY, allowed="up to 3 letters A-Z"
            ),
        )
        rid = request_id_or_new(request_id)

        async def resolve() -> PayoutLinkResponse | None:
            # None only when DOKU says the link does not exist (404); anything unclear raises.
            try:
                found = await self.status(reference_id=request.reference_id)
            except DokuAPIError as exc:
                if exc.http_status == 404:
                    return None
                raise
            if not found.is_result():
                raise DokuError("the status answer names no payout link")
            return found

        return await self._requester.call(
            self._ops.payout_link_initiate,
            _serde.encode_numbers(request),
            PayoutLinkResponse,
            request_id=rid,
            references={"reference_id": request.reference_id},
            resolve=resolve,
            matches=lambda r: (
                r.data is not None
                and r.data.reference_id == request.reference_id
                and (r.data.amount is None or r.data.amount == request.amount)
            ),
        )

    async def status(
        self, *, reference_id: str, request_id: str | None = None
    ) -> PayoutLinkResponse:
        """Read a payout link's status by your ``reference_id`` (sent as ``transaction_id``).

        Check ``response.link_status`` against :class:`PayoutLinkStatus`; an undocumented
        status is kept as text.
        """
        request = PayoutLinkStatusRequest(
            transaction_id=v.text("reference_id", reference_id, max_len=30)
        )
        return await self._requester.call(
            self._ops.payout_link_status,
            _serde.encode_numbers(request),
            PayoutLinkResponse,
            request_id=request_id_or_new(request_id),
            references={"reference_id": request.transaction_id},
        )
