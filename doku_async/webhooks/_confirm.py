"""Confirm mode: a notification is a trigger; the outcome handed over comes from check status."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

from .._client import DokuClient
from .._exceptions import (
    ConfigurationError,
    DokuAPIError,
    DokuError,
    DokuTransportError,
    RateLimitError,
    ServerError,
)
from .._states import PayoutState
from ..models.kirim import CheckStatusResponse, TransactionStatus
from ..models.notifications import Notification, NotificationStatus, UnpaidNotification

__all__ = [
    "ConfirmFunction",
    "ConfirmedNotification",
    "PartnerReferenceField",
    "ReferenceLookup",
]

log = logging.getLogger("doku_async.webhooks")

ConfirmFunction = Callable[[str], Awaitable[CheckStatusResponse | None]]
"""``async confirm(transaction_id) -> CheckStatusResponse | None``: ask check status about the
transfer whose DOKU ``referenceNo`` is ``transaction_id`` (``None``: unknown to you)."""
ReferenceLookup = Callable[[str], Awaitable[str | None]]
"""``async lookup(reference_no) -> partner_reference_no | None``, from your own records."""
PartnerReferenceField = Literal["sendTrxId", "invoiceNumber"]
"""An Unpaid body field that may carry your ``partnerReferenceNo`` (see ``create_webhook_app``)."""

# Which confirmed latestTransactionStatus values agree with a notification's claim.
_AGREES: Final[dict[str, frozenset[str]]] = {
    NotificationStatus.SUCCESS: frozenset({TransactionStatus.SUCCESS}),
    NotificationStatus.FAILED: frozenset({TransactionStatus.FAILED, TransactionStatus.CANCELED}),
    NotificationStatus.UNPAID: TransactionStatus.IN_PROGRESS,
    NotificationStatus.REFUNDED: frozenset({TransactionStatus.REFUNDED}),
}
# What check status takes as a reference: visible ASCII, at most 64 characters.
_REFERENCE = re.compile(r"[\x21-\x7e]{1,64}")


@dataclass(frozen=True, slots=True)
class ConfirmedNotification:
    """A notification whose outcome DOKU's check status confirmed; what confirm mode hands over.

    Act on :attr:`confirmed_status` (check status's ``latestTransactionStatus``), never on the
    body's claim: the legacy signature does not cover the body.

    Attributes:
        notification: the notification as received (its status is only a claim).
        status_response: check status's answer.
        partner_reference_no: the ``partnerReferenceNo`` check status was asked about (with a
            ``confirm`` callable: the answer's ``originalPartnerReferenceNo``, or ``""``).
        confirmed_status: ``latestTransactionStatus`` as two-digit text: ``"00"`` success,
            ``"01"``-``"03"`` in progress, ``"04"`` refunded, ``"05"`` canceled, ``"06"`` failed
            (see :class:`~doku_async.models.kirim.TransactionStatus`).
        disagrees: the body claimed another outcome than DOKU confirmed (logged as a warning).
    """

    notification: Notification
    status_response: CheckStatusResponse
    partner_reference_no: str
    confirmed_status: str
    disagrees: bool

    @property
    def kind(self) -> str:
        """``"unpaid"`` or ``"refund"``: the route it arrived on."""
        return self.notification.kind

    @property
    def transaction_id(self) -> str:
        """DOKU's ``referenceNo`` of the transfer (the notification's ``transactionId``)."""
        return self.notification.transaction_id

    @property
    def claimed_status(self) -> str:
        """The body's ``transactionStatus`` (``"40"`` for a Refund notification): a claim."""
        return self.notification.status

    @property
    def succeeded(self) -> bool:
        """DOKU confirms the transfer succeeded (``"00"``)."""
        return self.confirmed_status == TransactionStatus.SUCCESS

    @property
    def is_final(self) -> bool:
        """The confirmed status will not change (success, refunded, canceled, failed)."""
        return TransactionStatus.is_final(self.confirmed_status)

    @property
    def description(self) -> str:
        """A word for :attr:`confirmed_status`."""
        return TransactionStatus.describe(self.confirmed_status)

    @property
    def state(self) -> str | None:
        """The payout state DOKU confirmed (see :class:`~doku_async.PayoutState`):
        ``"succeeded"``, ``"pending"``, ``"failed"`` or ``"refunded"``."""
        return PayoutState.from_check_status(self.confirmed_status)


def disagrees(claimed: str, confirmed: str) -> bool:
    """Whether a notification's ``claimed`` status contradicts the ``confirmed`` one.

    ``50`` agrees with ``00``, ``35`` with ``06`` or ``05``, ``20`` with ``01``-``03`` and
    ``40`` with ``04``; an undocumented claim agrees with nothing.
    """
    return confirmed not in _AGREES.get(claimed, frozenset())


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a notification was not handed over, and the answer DOKU gets."""

    status: int
    message: str


UNAVAILABLE = Refusal(503, "could not confirm with DOKU; please retry")
NOT_FOUND = Refusal(404, "transaction not found at DOKU")
MISMATCH = Refusal(409, "notification does not match DOKU's record")


def _is_not_found_error(exc: DokuAPIError) -> bool:
    """DOKU's other way of saying "not found": a ``404xx01`` error answer."""
    return exc.response_code[:3] == "404" and exc.case_code == "01"


class Confirmer:
    """Settles a notification's outcome with check status (see ``create_webhook_app``)."""

    __slots__ = ("_client", "_confirm", "_field", "_lookup", "_timeout")

    def __init__(
        self,
        *,
        client: DokuClient | None,
        confirm: ConfirmFunction | None,
        reference_lookup: ReferenceLookup | None,
        partner_reference_field: PartnerReferenceField | None,
        timeout: float,
    ) -> None:
        self._client = client
        self._confirm = confirm
        self._lookup = reference_lookup
        self._field = partner_reference_field
        self._timeout = timeout

    def __repr__(self) -> str:
        via = "DokuClient" if self._client is not None else "callable"
        return f"Confirmer(via={via}, partner_reference_field={self._field!r})"

    async def confirm(self, notification: Notification) -> ConfirmedNotification | Refusal:
        """Check status's verdict on ``notification``, or why it cannot be handed over."""
        trx = notification.transaction_id
        if _REFERENCE.fullmatch(trx) is None:
            log.warning(
                "%s notification not handed over: its transactionId is not a DOKU reference",
                notification.kind,
            )
            return NOT_FOUND
        try:
            async with asyncio.timeout(self._timeout):
                found = await self._ask(notification)
        except TimeoutError:
            log.warning("check status did not answer in time for %s; answering 503", trx)
            return UNAVAILABLE
        except DokuAPIError as exc:
            if _is_not_found_error(exc):
                return self._not_found(notification)
            if isinstance(exc, ServerError | RateLimitError):
                log.warning("check status unavailable for %s (%s); answering 503", trx, exc)
            else:  # 400 / 401 / 403...: our configuration, not the sender's fault
                log.error("check status refused the confirmation of %s: %s", trx, exc)
            return UNAVAILABLE
        except DokuTransportError as exc:
            log.warning("check status unreachable for %s (%s); answering 503", trx, exc)
            return UNAVAILABLE
        except DokuError as exc:
            log.error("check status failed for %s: %s; answering 503", trx, exc)
            return UNAVAILABLE
        except Exception:
            log.exception("confirming %s failed; answering 503", trx)
            return UNAVAILABLE
        if found is None:
            return self._not_found(notification)
        response, partner_ref, trusted = found
        return self._judge(notification, response, partner_ref, trusted)

    async def _ask(
        self, notification: Notification
    ) -> tuple[CheckStatusResponse, str, bool] | None:
        """(answer, partner reference asked about, whether that reference is bound to the
        transaction by your own records), or ``None`` when nobody knows the transaction."""
        trx = notification.transaction_id
        if self._confirm is not None:
            answer = await self._confirm(trx)
            if answer is None:
                return None
            if not isinstance(answer, CheckStatusResponse):
                raise TypeError("confirm must return a CheckStatusResponse or None")
            return answer, answer.original_partner_reference_no or "", True
        assert self._client is not None
        partner_ref: str | None = None
        trusted = False
        if self._lookup is not None:
            partner_ref = await self._lookup(trx)
            if partner_ref is not None and not isinstance(partner_ref, str):
                raise TypeError("reference_lookup must return a str or None")
            trusted = partner_ref is not None
        if partner_ref is None and self._field is not None:
            partner_ref = self._body_reference(notification)
        if partner_ref is None:
            return None
        answer = await self._client.kirim.check_status(
            original_partner_reference_no=partner_ref, original_reference_no=trx
        )
        return answer, partner_ref, trusted

    def _body_reference(self, notification: Notification) -> str | None:
        if not isinstance(notification, UnpaidNotification):
            return None
        value = (
            notification.send_trx_id if self._field == "sendTrxId" else notification.invoice_number
        )
        if not isinstance(value, str) or _REFERENCE.fullmatch(value) is None:
            return None
        return value

    def _not_found(self, notification: Notification) -> Refusal:
        log.warning(
            "%s notification for %s: DOKU (or your reference lookup) does not know this "
            "transaction; not handed over (possibly forged)",
            notification.kind,
            notification.transaction_id,
        )
        return NOT_FOUND

    def _judge(
        self,
        notification: Notification,
        response: CheckStatusResponse,
        partner_ref: str,
        trusted: bool,
    ) -> ConfirmedNotification | Refusal:
        trx = notification.transaction_id
        status = response.transaction_status
        if status == TransactionStatus.NOT_FOUND:
            return self._not_found(notification)
        if not status:
            log.warning("check status gave no latestTransactionStatus for %s; answering 503", trx)
            return UNAVAILABLE
        answered_ref = response.original_reference_no
        answered_partner = response.original_partner_reference_no
        mismatch = (answered_ref is not None and answered_ref != trx) or (
            bool(partner_ref) and answered_partner is not None and answered_partner != partner_ref
        )
        # A partner reference read from the (unsigned) body is bound to this transaction only
        # by DOKU's answer naming the same referenceNo.
        if mismatch or (not trusted and answered_ref != trx):
            log.warning(
                "%s notification for %s does not match check status (which names %s); "
                "not handed over (possibly forged)",
                notification.kind,
                trx,
                repr(answered_ref),
            )
            return MISMATCH
        claimed = notification.status
        differs = disagrees(claimed, status)
        if differs:
            log.warning(
                "%s notification for %s claims %s (%s) but DOKU's check status says %s (%s); "
                "handing over DOKU's status",
                notification.kind,
                trx,
                claimed,
                NotificationStatus.describe(claimed),
                status,
                TransactionStatus.describe(status),
            )
        return ConfirmedNotification(
            notification=notification,
            status_response=response,
            partner_reference_no=partner_ref or (answered_partner or ""),
            confirmed_status=status,
            disagrees=differs,
        )


def confirmer_for(
    confirm_with: DokuClient | ConfirmFunction | None,
    *,
    on_confirmed: object,
    legacy: tuple[object, ...],
    reference_lookup: ReferenceLookup | None,
    partner_reference_field: PartnerReferenceField | None,
    timeout: float,
) -> Confirmer | None:
    """Check the confirm-mode arguments; the :class:`Confirmer`, or ``None`` in legacy mode."""
    if confirm_with is None:
        if on_confirmed is not None:
            raise ConfigurationError("on_confirmed needs confirm_with (a DokuClient or callable)")
        if reference_lookup is not None or partner_reference_field is not None:
            raise ConfigurationError(
                "reference_lookup and partner_reference_field need confirm_with"
            )
        if all(callback is None for callback in legacy):
            raise ConfigurationError(
                "register at least one of on_unpaid, on_refund, on_notification"
            )
        return None
    if on_confirmed is None:
        raise ConfigurationError("confirm mode hands outcomes to on_confirmed: register it")
    if any(callback is not None for callback in legacy):
        raise ConfigurationError(
            "confirm mode calls only on_confirmed; drop on_unpaid, on_refund, on_notification"
        )
    if not timeout > 0:
        raise ConfigurationError("confirm_timeout must be positive")
    if partner_reference_field not in (None, "sendTrxId", "invoiceNumber"):
        raise ConfigurationError('partner_reference_field: "sendTrxId", "invoiceNumber" or None')
    if isinstance(confirm_with, DokuClient):
        if reference_lookup is None and partner_reference_field is None:
            raise ConfigurationError(
                "confirm_with=DokuClient needs reference_lookup (referenceNo -> "
                "partnerReferenceNo) or partner_reference_field"
            )
        return Confirmer(
            client=confirm_with,
            confirm=None,
            reference_lookup=reference_lookup,
            partner_reference_field=partner_reference_field,
            timeout=timeout,
        )
    if not callable(confirm_with):
        raise ConfigurationError("confirm_with: a DokuClient or an async callable")
    if reference_lookup is not None or partner_reference_field is not None:
        raise ConfigurationError(
            "a confirm callable maps references itself: drop reference_lookup and "
            "partner_reference_field"
        )
    return Confirmer(
        client=None,
        confirm=confirm_with,
        reference_lookup=None,
        partner_reference_field=None,
        timeout=timeout,
    )
