"""``doku.kirim``: Kirim DOKU bank payouts over SNAP."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from .. import _serde
from .. import _validation as v
from .._banks import BankCodes
from .._constants import DEFAULT_CURRENCY, MISSING_PRIVATE_KEY
from .._exceptions import ConfigurationError
from .._pipeline import KirimOperations, SnapRequester
from .._settlement import MoneyRule
from ..models._base import Amount
from ..models.kirim import (
    AccountInquiryAdditionalInfo,
    AccountInquiryRequest,
    AccountInquiryResponse,
    BalanceInquiryRequest,
    BalanceInquiryResponse,
    CheckStatusRequest,
    CheckStatusResponse,
    TransferBankAdditionalInfo,
    TransferBankRequest,
    TransferResult,
)

__all__ = ["Kirim", "KirimSettings"]

_CURRENCY = re.compile(r"[A-Z]{3}")
_CODE = re.compile(r"[0-9]{1,2}")
_PARTNER_REF = re.compile(r"[\x21-\x7e]+")
_PARTNER_REF_ALLOWED = "visible ASCII characters (no spaces)"


def _partner_ref(field: str, value: object) -> str:
    return v.text(field, value, max_len=64, pattern=_PARTNER_REF, allowed=_PARTNER_REF_ALLOWED)


def _amount(value: object, currency: object) -> Amount:
    return Amount(
        value=v.amount("amount", value),
        currency=v.text(
            "currency", currency, max_len=3, min_len=3, pattern=_CURRENCY, allowed="A-Z"
        ),
    )


# Optional additionalInfo fields of a transfer: (max length, pattern, what the pattern allows).
_EXTRA_LIMITS: dict[str, tuple[int, re.Pattern[str] | None, str]] = {
    "beneficiary_first_name": (50, None, ""),
    "beneficiary_last_name": (50, None, ""),
    "beneficiary_bank_name": (100, None, ""),
    "beneficiary_account_name": (100, None, ""),
    "sender_first_name": (50, None, ""),
    "sender_last_name": (50, None, ""),
    "sender_personal_id": (50, None, ""),
    "sender_personal_id_type": (20, None, ""),
    "remark": (100, None, ""),
}


def _check_extra(name: str, value: object) -> str:
    if name == "beneficiary_phone_number":
        return v.phone(name, value)
    if name == "sender_country_code":
        return v.country_code(name, value)
    if name == "channel_code":
        return v.channel_code(value)
    max_len, pattern, allowed = _EXTRA_LIMITS[name]
    return v.text(name, value, max_len=max_len, pattern=pattern, allowed=allowed)


@dataclass(frozen=True, slots=True)
class KirimSettings:
    """The client settings Kirim DOKU calls read (handed over by the client)."""

    bank_codes: BankCodes
    check_status_service_code: str
    confirm_transfers: bool


class Kirim:
    """Kirim DOKU operations: account inquiry, balance inquiry, transfer to bank, check status.

    Reach it as ``doku.kirim``. Every method validates its arguments before any I/O and raises
    :class:`~doku_async.RequestValidationError` naming the bad field. The client hands it its
    requester (``None`` without a private key), endpoints and settings.
    """

    def __init__(
        self, requester: SnapRequester | None, ops: KirimOperations, settings: KirimSettings
    ) -> None:
        self._requester_or_none = requester
        self._ops = ops
        self._settings = settings
        self._money_rule = None if requester is None else MoneyRule(requester)

    def __repr__(self) -> str:
        return "Kirim()"

    @property
    def _requester(self) -> SnapRequester:
        if self._requester_or_none is None:
            raise ConfigurationError(MISSING_PRIVATE_KEY)
        return self._requester_or_none

    async def account_inquiry(
        self,
        *,
        partner_reference_no: str,
        customer_number: str,
        beneficiary_account_number: str,
        beneficiary_bank_code: str,
        beneficiary_account_name: str,
        amount: Decimal | int | str,
        currency: str = DEFAULT_CURRENCY,
        sender_country_code: str = "ID",
        channel_code: str | None = None,
    ) -> AccountInquiryResponse:
        """Check a beneficiary account before paying it (mandatory before ``transfer_bank``).

        Args:
            partner_reference_no: your reference for the inquiry (at most 64 characters).
            customer_number: the sender's phone number in ``62...`` form.
            beneficiary_account_number: the destination account (digits, at most 32).
            beneficiary_bank_code: the destination bank's three-digit code, e.g. ``"014"``; it
                must be in the client's ``bank_codes`` table.
            beneficiary_account_name: the name you expect on the account (DOKU rejects empty).
            amount: the amount you intend to send (``Decimal``, int or str; 2 decimals at most).
            currency: ISO currency, ``"IDR"``.
            sender_country_code: ISO country of the sender (DOKU rejects empty), ``"ID"``.
            channel_code: optional channel, e.g. ``"07"``.

        Returns:
            The inquiry answer; pass its ``session_id`` to :meth:`transfer_bank`.
        """
        request = AccountInquiryRequest(
            partner_reference_no=_partner_ref("partner_reference_no", partner_reference_no),
            customer_number=v.phone("customer_number", customer_number),
            amount=_amount(amount, currency),
            beneficiary_account_number=v.digits(
                "beneficiary_account_number", beneficiary_account_number, max_len=32
            ),
            additional_info=AccountInquiryAdditionalInfo(
                channel_code=v.optional_channel_code(channel_code),
                beneficiary_bank_code=v.bank_code(
                    "beneficiary_bank_code", beneficiary_bank_code, self._settings.bank_codes
                ),
                beneficiary_account_name=v.text(
                    "beneficiary_account_name", beneficiary_account_name, max_len=100
                ),
                sender_country_code=v.country_code("sender_country_code", sender_country_code),
            ),
        )
        return await self.send_inquiry(request)

    async def send_inquiry(self, request: AccountInquiryRequest) -> AccountInquiryResponse:
        """Send an already built and validated :class:`AccountInquiryRequest`, as
        :meth:`account_inquiry` does after checking its arguments (for callers such as the
        bulk runner that build requests themselves)."""
        return await self._requester.read(
            self._ops.account_inquiry,
            _serde.encode(request),
            AccountInquiryResponse,
            references={"partnerReferenceNo": request.partner_reference_no},
        )

    async def balance_inquiry(
        self, *, account_no: str, partner_reference_no: str | None = None
    ) -> BalanceInquiryResponse:
        """Read the Kirim DOKU balance.

        Args:
            account_no: your Kirim DOKU agent key, e.g. ``"A41879"`` (at most 16 characters).
            partner_reference_no: optional reference (at most 64 characters).

        Returns:
            The balance answer; ``available_balance`` reads it whatever shape DOKU used.
        """
        request = BalanceInquiryRequest(
            partner_reference_no=None
            if partner_reference_no is None
            else _partner_ref("partner_reference_no", partner_reference_no),
            account_no=v.text("account_no", account_no, max_len=16),
        )
        refs = {} if partner_reference_no is None else {"partnerReferenceNo": partner_reference_no}
        return await self._requester.read(
            self._ops.balance_inquiry,
            _serde.encode(request),
            BalanceInquiryResponse,
            references=refs,
        )

    async def transfer_bank(
        self,
        *,
        partner_reference_no: str,
        customer_number: str,
        beneficiary_account_number: str,
        beneficiary_bank_code: str,
        amount: Decimal | int | str,
        currency: str = DEFAULT_CURRENCY,
        session_id: str | None = None,
        fee_type: str | None = None,
        channel_code: str | None = None,
        beneficiary_account_name: str | None = None,
        beneficiary_first_name: str | None = None,
        beneficiary_last_name: str | None = None,
        beneficiary_phone_number: str | None = None,
        beneficiary_bank_name: str | None = None,
        sender_country_code: str | None = None,
        sender_first_name: str | None = None,
        sender_last_name: str | None = None,
        sender_personal_id: str | None = None,
        sender_personal_id_type: str | None = None,
        remark: str | None = None,
        external_id: str | None = None,
        confirm: bool | None = None,
    ) -> TransferResult:
        """Send money to a bank account, under the money rule.

        ``partner_reference_no`` is the transfer's idempotency key: keep it with your payout
        record, and never pay the same obligation under a new one. If the first answer leaves
        the outcome unclear (timeout after sending, dropped connection, 5xx, 504, 202, 409),
        the SDK asks check status with the original references and returns the real outcome;
        only a definite "not found" lets it send once more, with the same references.

        Args:
            partner_reference_no: your unique reference (at most 64 characters).
            customer_number: the sender's phone number in ``62...`` form.
            beneficiary_account_number: destination account (digits, at most 32).
            beneficiary_bank_code: destination bank's three-digit code, e.g. ``"014"``; it must
                be in the client's ``bank_codes`` table.
            amount: positive, at most 2 decimals (``Decimal``, int or str; never float).
            currency: ISO currency, ``"IDR"``.
            session_id: the account inquiry's ``session_id`` (at most 25 characters).
            fee_type: optional fee type (at most 25 characters).
            channel_code: optional channel, e.g. ``"07"``.
            beneficiary_account_name: and the other ``additionalInfo`` fields: optional text.
            beneficiary_first_name: optional.
            beneficiary_last_name: optional.
            beneficiary_phone_number: optional phone number in ``62...`` form.
            beneficiary_bank_name: optional.
            sender_country_code: optional ISO country, e.g. ``"ID"``.
            sender_first_name: optional.
            sender_last_name: optional.
            sender_personal_id: optional identity number.
            sender_personal_id_type: optional identity type, e.g. ``"KTP"``.
            remark: optional note (at most 100 characters).
            external_id: the ``X-EXTERNAL-ID`` to send (digits, at most 36); default a fresh
                random one. Pass your own when you journal it before sending, so a crashed
                run can settle this transfer by its references.
            confirm: follow DOKU's ``2004300`` ("accepted") with one check status, so the
                result says ``"succeeded"`` only for a payout DOKU confirmed; default from the
                client (``confirm_transfers``, on). ``False`` saves that call and returns
                ``"accepted"``.

        Returns:
            A :class:`TransferResult` whose ``status`` is ``"succeeded"``, ``"accepted"``,
            ``"pending"`` or ``"refunded"`` (see :class:`PayoutState`); only ``succeeded`` is
            a confirmed payout.

        Raises:
            RequestValidationError: bad argument; nothing was sent.
            BusinessRejectionError: and the other :class:`DokuAPIError` subclasses when DOKU
                definitely rejected it (nothing was paid).
            TransferFailedError: check status reports it failed or canceled (nothing paid).
            TransferOutcomeUnknownError: the outcome could not be settled; carries the references.
        """
        extra = {
            "channel_code": channel_code,
            "beneficiary_first_name": beneficiary_first_name,
            "beneficiary_last_name": beneficiary_last_name,
            "beneficiary_phone_number": beneficiary_phone_number,
            "beneficiary_bank_name": beneficiary_bank_name,
            "beneficiary_account_name": beneficiary_account_name,
            "sender_country_code": sender_country_code,
            "sender_first_name": sender_first_name,
            "sender_last_name": sender_last_name,
            "sender_personal_id": sender_personal_id,
            "sender_personal_id_type": sender_personal_id_type,
            "remark": remark,
        }
        given = {
            name: _check_extra(name, value) for name, value in extra.items() if value is not None
        }
        opt = v.optional_text
        request = TransferBankRequest(
            partner_reference_no=_partner_ref("partner_reference_no", partner_reference_no),
            customer_number=v.phone("customer_number", customer_number),
            beneficiary_account_number=v.digits(
                "beneficiary_account_number", beneficiary_account_number, max_len=32
            ),
            beneficiary_bank_code=v.bank_code(
                "beneficiary_bank_code", beneficiary_bank_code, self._settings.bank_codes
            ),
            amount=_amount(amount, currency),
            session_id=opt("session_id", session_id, max_len=25),
            fee_type=opt("fee_type", fee_type, max_len=25),
            additional_info=TransferBankAdditionalInfo(**given) if given else None,
        )
        fixed_external_id = (
            None if external_id is None else v.digits("external_id", external_id, max_len=36)
        )
        return await self.send_transfer(request, external_id=fixed_external_id, confirm=confirm)

    async def send_transfer(
        self,
        request: TransferBankRequest,
        *,
        external_id: str | None = None,
        confirm: bool | None = None,
    ) -> TransferResult:
        """Send an already built and validated :class:`TransferBankRequest` under the money
        rule, as :meth:`transfer_bank` does after checking its arguments (for callers such as
        the bulk runner that build requests themselves). ``external_id`` must be digits (at
        most 36); ``confirm`` defaults to the client's ``confirm_transfers``."""
        if self._money_rule is None:
            raise ConfigurationError(MISSING_PRIVATE_KEY)
        return await self._money_rule.transfer(
            self._ops.transfer_bank,
            self._ops.check_status,
            _serde.encode(request),
            request.partner_reference_no,
            request.amount.value,
            external_id=external_id,
            confirm=self._settings.confirm_transfers if confirm is None else confirm,
        )

    async def check_status(
        self,
        *,
        original_partner_reference_no: str,
        original_reference_no: str | None = None,
        original_external_id: str | None = None,
        service_code: str | None = None,
    ) -> CheckStatusResponse:
        """Ask for a transfer's latest status.

        Args:
            original_partner_reference_no: the transfer's ``partner_reference_no``.
            original_reference_no: DOKU's ``referenceNo`` or the inquiry ``sessionId``, if known.
            original_external_id: the transfer's ``X-EXTERNAL-ID``, if known (digits, at most 36).
            service_code: the original transaction's service code; default from the client
                (``"43"``, as in DOKU's example).

        Returns:
            The answer; ``transaction_status`` is ``"00"`` success ... ``"07"`` not found (see
            :class:`TransactionStatus`). DOKU's ``404xx01`` "Transaction Not Found" error
            answer also comes back as ``"07"`` (its code in ``response_code``), never raised:
            "not found" has one meaning across the SDK.
        """
        request = CheckStatusRequest(
            original_partner_reference_no=_partner_ref(
                "original_partner_reference_no", original_partner_reference_no
            ),
            original_reference_no=v.optional_text(
                "original_reference_no", original_reference_no, max_len=64
            ),
            original_external_id=None
            if original_external_id is None
            else v.digits("original_external_id", original_external_id, max_len=36),
            service_code=v.text(
                "service_code",
                self._settings.check_status_service_code if service_code is None else service_code,
                max_len=2,
                min_len=2,
                pattern=_CODE,
                allowed="digits",
            ),
        )
        return await self._requester.check_status(
            self._ops.check_status, _serde.encode(request), request.original_partner_reference_no
        )
