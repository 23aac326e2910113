"""The money rule, in its own room: sending a Kirim DOKU transfer and settling its outcome.

A transfer is never re-sent with a new ``partnerReferenceNo`` because its first attempt's
outcome is unknown. After a timeout, a dropped connection after the request was written, 5xx,
504, 202, 409 or an unreadable success, check status is asked with the original references;
only a definite "not found" makes one resend with the same ``partnerReferenceNo`` (and a fresh
``X-EXTERNAL-ID``) safe. A reference DOKU reports as existing is never "nothing paid". When
nothing settles it, :class:`~doku_async.TransferOutcomeUnknownError` carries the references.

An accepted transfer (``2004300``) is only *accepted*: with ``confirm`` one check status tells
whether it is succeeded, pending or refunded (see :class:`~doku_async.PayoutState`).

The request pipeline (signing, one attempt, reads, the token) is
:class:`~doku_async._pipeline.SnapRequester`; this module only decides.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from . import _serde
from ._exceptions import (
    ClientClosedError,
    DokuError,
    DokuTransportError,
    RateLimitError,
    TransferFailedError,
    TransferOutcomeUnknownError,
    split_code,
)
from ._pipeline import SnapOperation, SnapRequester, TokenUnavailable, new_external_id
from ._retry import Disposition
from ._signing import body_sha256_hex
from ._states import PayoutState
from .models.kirim import (
    CheckStatusRequest,
    CheckStatusResponse,
    TransactionStatus,
    TransferBankResponse,
    TransferResult,
)

__all__ = ["MoneyRule"]

log = logging.getLogger("doku_async")

_UNCLEAR = "the transfer's outcome is unclear"


class _Unclear(Exception):
    """A send whose outcome DOKU did not make clear; ``error`` is what happened."""

    def __init__(self, error: DokuError, *, external_id_spent: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.external_id_spent = external_id_spent


class _Again(Exception):
    """Send again with the same ``partnerReferenceNo`` (nothing was processed)."""


class MoneyRule:
    """Sends transfers through a :class:`SnapRequester` under the money rule."""

    def __init__(self, requester: SnapRequester) -> None:
        self._requester = requester

    async def transfer(
        self,
        op: SnapOperation,
        check_op: SnapOperation,
        body: bytes,
        partner_reference_no: str,
        amount: Decimal,
        *,
        external_id: str | None = None,
        confirm: bool = True,
    ) -> TransferResult:
        """Send a transfer (``body`` encoded once) and settle its outcome.

        Returns a :class:`TransferResult` whose status is a :class:`PayoutState`: accepted,
        pending, succeeded or refunded. Raises :class:`TransferFailedError` when DOKU says
        failed or canceled (nothing paid), another typed error when DOKU rejected it (nothing
        paid), or :class:`TransferOutcomeUnknownError` carrying the references.
        """
        call = _TransferCall(
            self._requester, op, check_op, body, partner_reference_no, amount, external_id
        )
        return await call.run(confirm)


class _TransferCall:
    """One ``transfer_bank`` call: its references, its sends and what settled it."""

    def __init__(
        self,
        requester: SnapRequester,
        op: SnapOperation,
        check_op: SnapOperation,
        body: bytes,
        partner_reference_no: str,
        amount: Decimal,
        external_id: str | None,
    ) -> None:
        self.requester = requester
        self.op = op
        self.check_op = check_op
        self.body = body
        self.body_hash = body_sha256_hex(body)
        self.partner_reference_no = partner_reference_no
        self.amount = amount
        self.deadline = requester.budget.deadline()
        self.refs = {
            "X-EXTERNAL-ID": external_id or new_external_id(),
            "partnerReferenceNo": partner_reference_no,
        }
        self.sends = 0
        self.resent = False
        # Once a send may have reached DOKU, no later failure may claim "nothing was paid":
        # that earlier send can still land.
        self.earlier: DokuError | None = None

    @property
    def external_id(self) -> str:
        return self.refs["X-EXTERNAL-ID"]

    def fresh_external_id(self) -> None:
        """The next send's ``X-EXTERNAL-ID``: DOKU refuses a reused one with 409xx00."""
        self.refs["X-EXTERNAL-ID"] = new_external_id()

    async def run(self, confirm: bool) -> TransferResult:
        while True:
            try:
                answer = await self.send_once()
            except _Again:
                continue
            except _Unclear as unclear:
                result = await self.settle(unclear)
                if result is None:
                    continue  # not found: resent once, with the same partnerReferenceNo
                return result
            return await self.accepted(answer, confirm)

    async def send_once(self) -> TransferBankResponse:
        """One send; its answer when DOKU accepted it. Raises :class:`_Again`,
        :class:`_Unclear` or the typed error of a definite rejection."""
        self.sends += 1
        try:
            answer = await self.requester.attempt(
                self.op,
                self.body,
                self.body_hash,
                self.external_id,
                self.deadline,
                self.sends,
                TransferBankResponse,
                self.refs,
            )
        except TokenUnavailable as exc:
            raise self.give_up(exc.error) from None
        except ClientClosedError as exc:  # never sent; an earlier send may still take effect
            raise self.give_up(exc) from None
        except DokuTransportError as exc:
            if exc.request_sent:
                raise _Unclear(exc) from None
            # Certainly not sent: sending again with the same references is safe.
            await self.wait_or_give_up(exc, None)
            raise _Again from None
        if answer.disposition is Disposition.SUCCESS and answer.decoded is not None:
            assert isinstance(answer.decoded, TransferBankResponse)
            return answer.decoded
        error = answer.error(self.refs)
        status = split_code(answer.raw.status, answer.code)[0]
        if status == 429:
            # Rejected before processing: wait, then the same partnerReferenceNo under a fresh
            # X-EXTERNAL-ID.
            retry_after = error.retry_after if isinstance(error, RateLimitError) else None
            await self.wait_or_give_up(error, retry_after)
            self.fresh_external_id()
            raise _Again
        disposition = answer.disposition
        if disposition in (Disposition.FINAL, Disposition.TOKEN) or (
            disposition is Disposition.RETRYABLE and status == 403
        ):
            raise self.give_up(error)
        # 5xx, 504, 408, 202, 409, or an undecodable success. 409xx00: this X-EXTERNAL-ID was
        # already used today; DOKU's rule is never to resend it: only check status settles it.
        raise _Unclear(error, external_id_spent=status == 409 and answer.code[5:] == "00")

    async def wait_or_give_up(self, error: DokuError, retry_after: float | None) -> None:
        if not await self.requester.budget.backoff_or_give_up(
            self.sends, self.requester.retry.max_attempts, self.deadline, retry_after
        ):
            raise self.give_up(error)

    def give_up(self, error: DokuError) -> DokuError:
        if self.earlier is None:
            return error
        return TransferOutcomeUnknownError(
            f"{_UNCLEAR}: an earlier send may still take effect and the resend failed "
            f"({type(error).__name__}); do not resend with new references",
            references=self.refs,
            last_error=error,
        )

    def unknown(self, reason: str, last: DokuError) -> TransferOutcomeUnknownError:
        return TransferOutcomeUnknownError(
            f"{_UNCLEAR}{reason}; do not resend with new references",
            references=self.refs,
            last_error=last,
        )

    async def settle(self, unclear: _Unclear) -> TransferResult | None:
        """Settle an unclear send through check status; ``None`` means send once more."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("transfer outcome unclear (%s); asking check status", type(unclear.error))
        found = await self.ask_check_status()
        if found is None:
            raise self.unknown(
                f" and check status could not settle it ({type(unclear.error).__name__})",
                unclear.error,
            )
        if found.transaction_status == TransactionStatus.NOT_FOUND:
            if unclear.external_id_spent:
                raise self.unknown(
                    ": DOKU says this X-EXTERNAL-ID was already used today but check status "
                    "does not find the transfer; it is not resent",
                    unclear.error,
                )
            if self.resent:
                raise self.unknown(
                    ": DOKU does not find it even after one resend with the same references",
                    unclear.error,
                )
            # DOKU does not know the transfer: send it again under the same
            # partnerReferenceNo (DOKU's idempotency key) and a fresh X-EXTERNAL-ID.
            self.resent = True
            self.earlier = unclear.error
            self.fresh_external_id()
            return None
        if PayoutState.from_check_status(found.transaction_status) is None:
            raise self.unknown(
                f": check status answered an undocumented status {found.transaction_status!r}",
                unclear.error,
            )
        return self.result(self.state_of(found), None, found)

    async def accepted(self, answer: TransferBankResponse, confirm: bool) -> TransferResult:
        """DOKU accepted the transfer: one check status confirms it, if asked to."""
        if not confirm:
            return self.result(PayoutState.ACCEPTED, answer, None)
        found = await self.ask_check_status()
        if found is None or found.transaction_status == TransactionStatus.NOT_FOUND:
            # Accepted; DOKU's confirmation is not (yet) to be had: say no more.
            return self.result(PayoutState.ACCEPTED, answer, None)
        return self.result(self.state_of(found), answer, found)

    async def ask_check_status(self) -> CheckStatusResponse | None:
        """Check status about this transfer; ``None`` when it cannot tell."""
        requester = self.requester
        body = _serde.encode(
            CheckStatusRequest(
                original_partner_reference_no=self.partner_reference_no,
                original_external_id=self.external_id,
                service_code=requester.check_service_code,
            )
        )
        try:
            found = await requester.check_status(
                self.check_op,
                body,
                self.partner_reference_no,
                deadline=self.deadline,
                max_attempts=requester.retry.status_checks,
            )
        except DokuError:
            return None
        return found if found.transaction_status else None

    def state_of(self, found: CheckStatusResponse) -> str:
        """The payout state check status gives; raises when DOKU says failed or canceled."""
        if found.amount is not None and found.amount.value != self.amount:
            # DOKU's record of this reference is what counts: a reference it reports paid is
            # paid, whatever the amount (check status may report it with a fee, or the
            # reference was used before for another amount). Flag it loudly.
            log.warning(
                "check status reports %s for partnerReferenceNo %s, which was sent for %s: "
                "DOKU's status for this reference stands; reconcile the difference",
                found.amount.value,
                self.partner_reference_no,
                self.amount,
            )
        code = found.transaction_status
        state = PayoutState.from_check_status(code) or PayoutState.ACCEPTED
        if state == PayoutState.FAILED:
            raise TransferFailedError(
                f"check status reports the transfer {found.status_description}; nothing paid",
                transaction_status=code,
                http_status=200,
                response_code=found.response_code,
                response_message=found.transaction_status_desc or found.response_message,
                references=self.refs,
                details=found,
            )
        return state

    def result(
        self,
        state: str,
        answer: TransferBankResponse | None,
        found: CheckStatusResponse | None,
    ) -> TransferResult:
        reported = found.amount.value if found is not None and found.amount is not None else None
        reference_no = answer.reference_no if answer is not None else None
        if reference_no is None and found is not None:
            reference_no = found.original_reference_no
        return TransferResult(
            status=state,
            partner_reference_no=self.partner_reference_no,
            external_id=self.external_id,
            reference_no=reference_no,
            transaction_status=found.transaction_status if found is not None else None,
            response=answer,
            status_response=found,
            resent=self.resent,
            reported_amount=reported if reported is not None and reported != self.amount else None,
        )
