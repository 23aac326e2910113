"""The per-item flow of a bulk run: settle what an earlier run may have sent, check the
account holder's name, journal the sending mark, send under the money rule, confirm, and
record the outcome. The worker pool that feeds items to it is :mod:`._runner`."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable

from .. import _validation as v
from .._client import DokuClient
from .._constants import DEFAULT_CURRENCY
from .._exceptions import (
    AuthenticationError,
    BadRequestError,
    BusinessRejectionError,
    ConfigurationError,
    DokuAPIError,
    DokuError,
    DokuTransportError,
    DuplicateRequestError,
    InsufficientFundsError,
    RateLimitError,
    RequestValidationError,
    TransferFailedError,
    TransferOutcomeUnknownError,
)
from .._names import NameCheckMode, names_match
from .._pipeline import new_external_id
from .._redact import mask_account
from .._states import PayoutState
from ..models._base import Amount
from ..models.kirim import (
    AccountInquiryAdditionalInfo,
    AccountInquiryRequest,
    CheckStatusResponse,
    TransactionStatus,
    TransferBankAdditionalInfo,
    TransferBankRequest,
    TransferResult,
)
from ._journal import FINAL_STATES, IN_DOUBT_STATES
from ._models import ItemResult, PayoutItem, payout_item
from ._ratelimit import RateLimiter
from ._storage import JournalStorage, LeaseLostError

__all__ = ["ItemFlow"]

log = logging.getLogger("doku_async.bulk")


def _differs(journaled: PayoutItem, given: PayoutItem) -> bool:
    return (
        journaled.amount != given.amount
        or journaled.account_number != given.account_number
        or journaled.bank_code != given.bank_code
    )


def _earlier_transfer(found: CheckStatusResponse, session_id: str | None) -> bool:
    """Whether the transfer check status found is not the one just sent: each send carries the
    ``sessionId`` of its own account inquiry, and DOKU reports the found transfer's."""
    return bool(found.session_id) and bool(session_id) and found.session_id != session_id


class _RateLimited(Exception):
    def __init__(self, error: RateLimitError, external_id: str | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.external_id = external_id


class ItemFlow:
    """How one item is paid (or settled) within a run; the runner's settings it reads are
    handed over once."""

    def __init__(
        self,
        *,
        client: DokuClient,
        journal: JournalStorage | None,
        limiter: RateLimiter,
        customer_number: str,
        sender_country_code: str,
        channel_code: str | None,
        name_check: NameCheckMode,
        wait_for_final: bool,
        final_timeout: float,
        poll_interval: float,
        stopping: Callable[[], bool],
    ) -> None:
        self.client = client
        self.journal = journal
        self.limiter = limiter
        self.customer_number = customer_number
        self.sender_country_code = sender_country_code
        self.channel_code = channel_code
        self.name_check: NameCheckMode = name_check
        self.wait_for_final = wait_for_final
        self.final_timeout = final_timeout
        self.poll_interval = poll_interval
        self.stopping = stopping
        self._references: set[int] = set()
        self._busy: set[int] = set()
        """The references being worked on now."""

    def allow_again(self, reference: str) -> bool:
        """Let ``reference`` be worked on again in this run, unless it is being worked on now
        (then ``False``). A shared journal's claim handed it back to this runner (after
        another runner took it over and died): the claim makes it this runner's alone, and
        the flow settles it through check status before anything is sent again."""
        marker = hash(reference)
        if marker in self._busy:
            return False
        self._references.discard(marker)
        return True

    async def process(self, item: PayoutItem) -> ItemResult:
        """Pay or settle ``item``; its result (never raises for one item's trouble)."""
        started = time.perf_counter()
        marker = hash(item.reference)  # a hash, not the text: half the memory per item
        if marker in self._references:
            # Never pay (or journal over) a reference twice in one run.
            return ItemResult(
                reference=item.reference,
                status="failed",
                amount=item.amount,
                message="the reference appears more than once in this run; not paid again",
                line=item.line,
            )
        self._references.add(marker)
        self._busy.add(marker)
        try:
            result = await self._pay_or_settle(item)
        except (asyncio.CancelledError, ConfigurationError, AuthenticationError):
            raise  # the whole run is misconfigured: stop it
        except sqlite3.Error:
            raise  # the journal cannot be written: no transfer may go out without its mark
        except LeaseLostError as exc:
            # Another runner holds the item (a shared journal): it is theirs; nothing sent,
            # and it may come back to this runner if theirs dies.
            self._references.discard(marker)
            result = ItemResult(
                reference=item.reference,
                status="skipped",
                amount=item.amount,
                message=exc.message,
                line=item.line,
            )
        except Exception as exc:  # never let one item stop the run
            log.exception("unexpected error on item %s", item.reference)
            state = self.journal.get(item.reference) if self.journal is not None else None
            sent = state is not None and state.state in IN_DOUBT_STATES
            result = self._finish(
                item,
                "unknown" if sent else "failed",
                message=f"unexpected error: {type(exc).__name__}",
                external_id=state.external_id if state is not None else None,
                retryable=not sent,
            )
        finally:
            self._busy.discard(marker)
        result.latency = time.perf_counter() - started
        return result

    async def _pay_or_settle(self, item: PayoutItem) -> ItemResult:
        journal = self.journal
        external_id: str | None = None
        if journal is not None:
            entry = journal.get(item.reference)
            if entry is not None and _differs(entry.item, item):
                # The journal holds this reference for other details (maybe paid with them):
                # never pay it with these; unknown while the earlier transfer is in doubt.
                return ItemResult(
                    reference=item.reference,
                    status="unknown" if entry.state in IN_DOUBT_STATES else "failed",
                    amount=item.amount,
                    message="the journal holds other details (bank, account or amount) for "
                    f"this reference, recorded as {entry.state}; not paid with these",
                    external_id=entry.external_id,
                    line=item.line,
                )
            if entry is not None and entry.state in FINAL_STATES:
                return ItemResult(
                    reference=item.reference,
                    status="skipped",
                    amount=item.amount,
                    code=entry.code,
                    message=entry.message,
                    reference_no=entry.reference_no,
                    external_id=entry.external_id,
                    line=item.line,
                    previous=entry.state,
                )
            if entry is not None and entry.state in IN_DOUBT_STATES:
                settled = await self._settle(item, entry.external_id)
                if settled is not None:
                    return settled
                # Not found at DOKU: paying under the same partnerReferenceNo is safe, with
                # a fresh X-EXTERNAL-ID (journaled before sending; DOKU may refuse a reused
                # one with 409xx00).
                external_id = None
        return await self._pay(item, external_id)

    async def _settle(self, item: PayoutItem, external_id: str | None) -> ItemResult | None:
        """Settle an item whose transfer may have been sent; ``None`` if DOKU never got it."""
        await self.limiter.acquire()
        try:
            status = await self.client.kirim.check_status(
                original_partner_reference_no=item.reference, original_external_id=external_id
            )
        except (AuthenticationError, ConfigurationError):
            raise
        except DokuError as exc:
            return self._finish(
                item,
                "unknown",
                message=f"check status failed: {exc}",
                external_id=external_id,
                source="resume",
            )
        code = status.transaction_status
        if code == TransactionStatus.NOT_FOUND:
            return None
        if status.amount is not None and status.amount.value != item.amount:
            # DOKU's status for the reference stands (a reference it reports paid is paid);
            # the difference is flagged in the result, never read as "nothing paid".
            log.warning(
                "check status reports %s for %s, planned for %s; recorded as DOKU reports it",
                status.amount.value,
                item.reference,
                item.amount,
            )
        return await self._from_status(item, status, external_id, source="resume")

    async def _from_status(
        self,
        item: PayoutItem,
        status: CheckStatusResponse,
        external_id: str | None,
        *,
        source: str = "check_status",
    ) -> ItemResult:
        code = status.transaction_status
        if code in TransactionStatus.IN_PROGRESS and self.wait_for_final:
            status = await self._wait_final(item, status)
            code = status.transaction_status
        ref_no = status.original_reference_no
        reported = status.amount.value if status.amount is not None else None
        note = (
            f"DOKU reports amount {reported}, planned {item.amount}: reconcile the difference"
            if reported is not None and reported != item.amount
            else ""
        )
        state = PayoutState.from_check_status(code)
        if state is None:
            return self._finish(
                item,
                "unknown",
                code=code,
                message=f"undocumented status {code!r}",
                reference_no=ref_no,
                external_id=external_id,
                source=source,
            )
        message = note
        if state in (PayoutState.FAILED, PayoutState.REFUNDED):
            desc = status.transaction_status_desc or status.status_description
            message = f"{desc}; {note}" if note else desc
        return self._finish(
            item,
            state,
            code=code,
            message=message,
            reference_no=ref_no,
            external_id=external_id,
            source=source,
        )

    async def _wait_final(
        self, item: PayoutItem, status: CheckStatusResponse
    ) -> CheckStatusResponse:
        deadline = time.monotonic() + self.final_timeout
        while status.transaction_status in TransactionStatus.IN_PROGRESS:
            if time.monotonic() + self.poll_interval > deadline or self.stopping():
                break
            await asyncio.sleep(self.poll_interval)
            await self.limiter.acquire()
            try:
                status = await self.client.kirim.check_status(
                    original_partner_reference_no=item.reference
                )
            except (AuthenticationError, ConfigurationError):
                raise
            except DokuError as exc:
                log.debug("polling %s failed: %s", item.reference, exc)
        return status

    async def _pay(self, item: PayoutItem, external_id: str | None) -> ItemResult:
        """Inquiry then transfer; a 429 that outlasts the SDK's own retries sends the item
        back through the (now slower) rate limiter, up to ``RATE_LIMIT_ROUNDS`` times. Nothing
        was paid on a 429, so retrying with the same references is safe."""
        try:
            # Checked once here (an item may have been built without payout_item()); the
            # requests are then built from the checked values without validating them again.
            checked = payout_item(
                reference=item.reference,
                bank_code=item.bank_code,
                account_number=item.account_number,
                account_name=item.account_name,
                amount=item.amount,
                remark=item.remark,
                bank_codes=self.client.bank_codes,
            )
        except RequestValidationError as exc:
            return self._rejected(item, exc, external_id=external_id)
        for _ in range(self.RATE_LIMIT_ROUNDS - 1):
            try:
                return await self._pay_once(item, checked, external_id)
            except _RateLimited:
                # Nothing was processed: the next round sends under a fresh X-EXTERNAL-ID
                # (journaled before it is sent), never the one DOKU already saw.
                external_id = None
        try:
            return await self._pay_once(item, checked, external_id)
        except _RateLimited as exc:
            return self._rejected(item, exc.error, external_id=exc.external_id)

    RATE_LIMIT_ROUNDS = 20

    def _name_mismatch(self, item: PayoutItem, registered: str | None) -> str | None:
        """Why the inquiry's account holder is not the payee the file names, or ``None``.

        The main safeguard against paying the wrong person: checked before any transfer.
        """
        if self.name_check == "off":
            return None
        if not registered:
            if self.name_check == "strict":
                return "name check (strict): DOKU's inquiry returned no account holder name"
            log.warning("item %s: the inquiry returned no account holder name", item.reference)
            return None
        check = names_match(item.account_name, registered, self.name_check)
        if check.ok:
            return None
        return (
            f"name check ({check.mode}): the bank has {registered!r} for this account, the "
            f"file says {item.account_name!r} ({check.reason}); not paid"
        )

    async def _pay_once(
        self, item: PayoutItem, checked: PayoutItem, external_id: str | None
    ) -> ItemResult:
        """Inquiry, name check, sending mark, transfer, confirmation: one round."""
        inquired = await self._inquire(item, checked, external_id)
        if isinstance(inquired, ItemResult):
            return inquired
        session_id = inquired
        external_id = external_id or new_external_id()
        if self.journal is not None:
            await self.journal.mark_sending_grouped(item, external_id, session_id=session_id)
        sent = await self._send(item, checked, external_id, session_id)
        if isinstance(sent, ItemResult):
            return sent
        return await self._after_transfer(item, sent, external_id, session_id)

    async def _inquire(
        self, item: PayoutItem, checked: PayoutItem, external_id: str | None
    ) -> str | ItemResult | None:
        """The account inquiry and the name check: its ``sessionId``, or the item's result
        when it ends here (nothing sent)."""
        kirim = self.client.kirim
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "item %s: paying %s to bank %s account %s",
                item.reference,
                item.amount,
                item.bank_code,
                mask_account(item.account_number),
            )
        await self.limiter.acquire()
        try:
            inquiry = await kirim.send_inquiry(
                AccountInquiryRequest(
                    partner_reference_no=new_external_id(),
                    customer_number=self.customer_number,
                    amount=Amount(value=checked.amount, currency=DEFAULT_CURRENCY),
                    beneficiary_account_number=checked.account_number,
                    additional_info=AccountInquiryAdditionalInfo(
                        channel_code=self.channel_code,
                        beneficiary_bank_code=checked.bank_code,
                        beneficiary_account_name=checked.account_name,
                        sender_country_code=self.sender_country_code,
                    ),
                )
            )
            # DOKU's own value: checked before anything is journaled or sent.
            session_id = v.optional_text("session_id", inquiry.session_id, max_len=25)
        except RateLimitError as exc:
            raise _RateLimited(exc, external_id) from None
        except (AuthenticationError, ConfigurationError):
            raise  # credentials or settings are wrong: every item would fail; stop the run
        except DokuError as exc:
            return self._rejected(item, exc, external_id=None)
        mismatch = self._name_mismatch(checked, inquiry.beneficiary_account_name)
        if mismatch is not None:
            # Nothing sent; a later run with the name corrected in the file retries it.
            return self._finish(
                item, "failed", code="name_mismatch", message=mismatch, retryable=True
            )
        return session_id

    async def _send(
        self, item: PayoutItem, checked: PayoutItem, external_id: str, session_id: str | None
    ) -> TransferResult | ItemResult:
        """The transfer, under the money rule (its sending mark is already committed)."""
        kirim = self.client.kirim
        await self.limiter.acquire()
        try:
            result = await kirim.send_transfer(
                TransferBankRequest(
                    partner_reference_no=checked.reference,
                    customer_number=self.customer_number,
                    beneficiary_account_number=checked.account_number,
                    beneficiary_bank_code=checked.bank_code,
                    amount=Amount(value=checked.amount, currency=DEFAULT_CURRENCY),
                    session_id=session_id,
                    additional_info=TransferBankAdditionalInfo(
                        channel_code=self.channel_code,
                        beneficiary_account_name=checked.account_name,
                        remark=checked.remark,
                    ),
                ),
                external_id=external_id,
                confirm=False,  # confirmed below, under the run's rate limit
            )
        except TransferOutcomeUnknownError as exc:
            return self._finish(item, "unknown", message=exc.message, external_id=external_id)
        except TransferFailedError as exc:
            found = exc.details if isinstance(exc.details, CheckStatusResponse) else None
            return self._finish(
                item,
                "failed",
                code=exc.transaction_status,
                message=exc.response_message or exc.message,
                reference_no=found.original_reference_no if found is not None else None,
                external_id=external_id,
                source="check_status",  # the money rule settled it through check status
            )
        except RateLimitError as exc:
            raise _RateLimited(exc, external_id) from None
        except (AuthenticationError, ConfigurationError):
            raise  # rejected before processing: nothing paid; stop the run
        except DokuTransportError as exc:
            if exc.request_sent:  # the SDK settles these itself; defensive
                return self._finish(item, "unknown", message=exc.message, external_id=external_id)
            return self._rejected(item, exc, external_id=external_id)
        except DokuError as exc:
            return self._rejected(item, exc, external_id=external_id)
        return result

    async def _after_transfer(
        self,
        item: PayoutItem,
        result: TransferResult,
        external_id: str,
        session_id: str | None,
    ) -> ItemResult:
        """What the transfer's answer means: settled, or accepted and to be confirmed."""
        kirim = self.client.kirim
        if result.status_response is not None and result.response is None:
            # Settled by the money rule through check status (the answer was unclear).
            found = result.status_response
            if found.transaction_status == TransactionStatus.SUCCESS and _earlier_transfer(
                found, session_id
            ):
                return self._already_paid(item, found, external_id)
            return await self._from_status(item, found, external_id)
        # DOKU accepted it (2004300): accepted is not paid. Confirm it with one check status,
        # under the run's rate limit, unless the client is told not to confirm.
        if not self.client.confirm_transfers:
            return self._finish(
                item,
                "accepted",
                code="2004300",
                message="accepted by DOKU; not confirmed (confirm_transfers is off)",
                reference_no=result.reference_no,
                external_id=external_id,
            )
        await self.limiter.acquire()
        try:
            status = await kirim.check_status(
                original_partner_reference_no=item.reference, original_external_id=external_id
            )
        except (AuthenticationError, ConfigurationError):
            raise
        except DokuError as exc:
            status = None
            problem = type(exc).__name__
        else:
            problem = "not found yet"
        if status is None or status.transaction_status == TransactionStatus.NOT_FOUND:
            # Accepted, but DOKU's confirmation is not to be had now: a reconcile or a
            # resumed run settles it.
            return self._finish(
                item,
                "accepted",
                code="2004300",
                message=f"accepted by DOKU; final status not confirmed ({problem})",
                reference_no=result.reference_no,
                external_id=external_id,
            )
        return await self._from_status(item, status, external_id)

    def _already_paid(
        self, item: PayoutItem, status: CheckStatusResponse, external_id: str | None
    ) -> ItemResult:
        """DOKU holds a paid transfer under this reference that this run did not send (its
        inquiry session differs): paid before this run, never paid again."""
        reported = status.amount.value if status.amount is not None else None
        message = (
            "already paid before this run: DOKU holds a paid transfer under this reference "
            "(the journal had no record of it); not paid again"
        )
        if reported is not None and reported != item.amount:
            message += f"; DOKU reports amount {reported}, planned {item.amount}: reconcile"
        return self._finish(
            item,
            "succeeded",
            code=status.transaction_status,
            message=message,
            reference_no=status.original_reference_no,
            external_id=external_id,
            already_paid=True,
            source="check_status",
        )

    def _rejected(self, item: PayoutItem, exc: DokuError, *, external_id: str | None) -> ItemResult:
        """A definite "not paid": final for business rejections, retryable otherwise."""
        final = isinstance(
            exc, RequestValidationError | BadRequestError | DuplicateRequestError
        ) or (
            isinstance(exc, BusinessRejectionError) and not isinstance(exc, InsufficientFundsError)
        )
        code = exc.response_code if isinstance(exc, DokuAPIError) else ""
        message = exc.response_message if isinstance(exc, DokuAPIError) else exc.message
        return self._finish(
            item,
            "failed",
            code=code,
            message=message or exc.message,
            external_id=external_id,
            retryable=not final,
        )

    def _finish(
        self,
        item: PayoutItem,
        status: str,
        *,
        code: str = "",
        message: str = "",
        reference_no: str | None = None,
        external_id: str | None = None,
        retryable: bool = False,
        already_paid: bool = False,
        source: str = "answer",
    ) -> ItemResult:
        if self.journal is not None:
            state = "retry" if status == "failed" and retryable else status
            self.journal.record_soon(
                item, state, code=code, message=message, reference_no=reference_no, source=source
            )
        return ItemResult(
            reference=item.reference,
            status=status,
            amount=item.amount,
            code=code,
            message=message,
            reference_no=reference_no,
            external_id=external_id,
            line=item.line,
            retryable=retryable,
            already_paid=already_paid,
            bank_code=item.bank_code,
            bank_name=self.client.bank_codes.name_of(item.bank_code) or "",
        )
