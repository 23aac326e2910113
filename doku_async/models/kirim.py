"""Kirim DOKU (SNAP) request and response bodies."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, ClassVar, Final

import msgspec

from ._base import Amount, RequestStruct, ResponseStruct, SnapResponse, normalize_code

__all__ = [
    "AccountInfo",
    "AccountInquiryAdditionalInfo",
    "AccountInquiryRequest",
    "AccountInquiryResponse",
    "AccountInquiryResponseInfo",
    "BalanceInquiryRequest",
    "BalanceInquiryResponse",
    "BalanceInquiryResponseInfo",
    "CheckStatusRequest",
    "CheckStatusResponse",
    "TokenRequest",
    "TokenResponse",
    "TransactionStatus",
    "TransferBankAdditionalInfo",
    "TransferBankRequest",
    "TransferBankResponse",
    "TransferBankResponseInfo",
    "TransferResult",
]


# --- token ----------------------------------------------------------------------------------


class TokenRequest(RequestStruct, kw_only=True):
    """Body of the B2B token request."""

    grant_type: str


class TokenResponse(SnapResponse, kw_only=True):
    """B2B token answer. Its repr hides the token."""

    __essential__: ClassVar[frozenset[str]] = frozenset({"access_token", "expires_in"})

    access_token: str = ""
    token_type: str = "Bearer"
    """As sent; never used to build the header (DOKU's fixtures send ``"Bearer "``)."""
    expires_in: int | str = 900
    additional_info: Any = None
    """Free-form: DOKU sends ``""`` here (a string), sometimes ``null`` or nothing."""

    def __repr__(self) -> str:
        return f"TokenResponse(response_code={self.response_code!r}, access_token=***)"

    @property
    def lifetime(self) -> float:
        """``expiresIn`` in seconds (DOKU sends an int or a numeric string)."""
        try:
            value = float(self.expires_in)
        except ValueError:
            return 900.0
        return value if math.isfinite(value) and value > 0 else 900.0


# --- account inquiry ------------------------------------------------------------------------


class AccountInquiryAdditionalInfo(RequestStruct, kw_only=True):
    """``additionalInfo`` of an account inquiry."""

    channel_code: str | None = None
    beneficiary_bank_code: str
    beneficiary_account_name: str
    sender_country_code: str


class AccountInquiryRequest(RequestStruct, kw_only=True):
    """Body of ``bank-account-inquiry``."""

    partner_reference_no: str
    customer_number: str
    amount: Amount
    beneficiary_account_number: str
    additional_info: AccountInquiryAdditionalInfo


class AccountInquiryResponseInfo(ResponseStruct, kw_only=True):
    """``additionalInfo`` of an account inquiry answer."""

    sender_country_code: str | None = None
    forex_rate: str | None = None
    forex_origin_currency: str | None = None
    fee_amount: str | None = None
    fee_currency: str | None = None
    beneficiary_amount: str | None = None
    reference_number: str | None = None


class AccountInquiryResponse(SnapResponse, kw_only=True):
    """Answer of ``bank-account-inquiry``. Pass :attr:`session_id` to ``transfer_bank``."""

    __essential__: ClassVar[frozenset[str]] = frozenset(
        {"reference_no", "partner_reference_no", "session_id", "beneficiary_account_name"}
    )

    reference_no: str | None = None
    partner_reference_no: str | None = None
    beneficiary_account_number: str | None = None
    beneficiary_account_name: str | None = None
    beneficiary_bank_code: str | None = None
    beneficiary_bank_short_name: str | None = None
    beneficiary_bank_name: str | None = None
    amount: Amount | None = None
    session_id: str | None = None
    additional_info: AccountInquiryResponseInfo | None = None


# --- balance inquiry ------------------------------------------------------------------------


class BalanceInquiryRequest(RequestStruct, kw_only=True):
    """Body of ``balance-inquiry``; ``accountNo`` is the Kirim DOKU agent key."""

    partner_reference_no: str | None = None
    account_no: str


class AccountInfo(ResponseStruct, kw_only=True):
    """One entry of ``accountInfos``; DOKU spells available balance two ways."""

    __essential__: ClassVar[frozenset[str]] = frozenset({"available_balance", "avaliable_balance"})

    hold_amount: Amount | None = None
    available_balance: Amount | None = None
    avaliable_balance: Amount | None = None
    """The docs' misspelling ``avaliableBalance``; read :attr:`balance` instead."""

    @property
    def balance(self) -> Amount | None:
        """The available balance, whichever spelling carried it."""
        return (
            self.available_balance if self.available_balance is not None else self.avaliable_balance
        )


class BalanceInquiryResponseInfo(ResponseStruct, kw_only=True):
    """``additionalInfo`` of a balance answer."""

    credit_alert_limit: Amount | None = None


class BalanceInquiryResponse(SnapResponse, kw_only=True):
    """Answer of ``balance-inquiry``. ``accountInfos`` comes as an object or an array."""

    __essential__: ClassVar[frozenset[str]] = frozenset({"account_infos"})

    account_no: str | None = None
    name: str | None = None
    account_infos: AccountInfo | list[AccountInfo] | None = None
    additional_info: BalanceInquiryResponseInfo | None = None

    @property
    def accounts(self) -> list[AccountInfo]:
        """``accountInfos`` as a list, whatever shape it came in."""
        infos = self.account_infos
        if infos is None:
            return []
        return [infos] if isinstance(infos, AccountInfo) else list(infos)

    @property
    def available_balance(self) -> Decimal | None:
        """The first account's available balance, or ``None`` when DOKU sent none."""
        for info in self.accounts:
            bal = info.balance
            if bal is not None:
                return bal.value
        return None


# --- transfer to bank -----------------------------------------------------------------------


class TransferBankAdditionalInfo(RequestStruct, kw_only=True):
    """``additionalInfo`` of a bank transfer."""

    channel_code: str | None = None
    beneficiary_first_name: str | None = None
    beneficiary_last_name: str | None = None
    beneficiary_phone_number: str | None = None
    beneficiary_bank_name: str | None = None
    beneficiary_account_name: str | None = None
    sender_country_code: str | None = None
    sender_first_name: str | None = None
    sender_last_name: str | None = None
    sender_personal_id: str | None = None
    sender_personal_id_type: str | None = None
    remark: str | None = None


class TransferBankRequest(RequestStruct, kw_only=True):
    """Body of ``transfer-bank``."""

    partner_reference_no: str
    customer_number: str
    beneficiary_account_number: str
    beneficiary_bank_code: str
    amount: Amount
    session_id: str | None = None
    fee_type: str | None = None
    additional_info: TransferBankAdditionalInfo | None = None


class TransferBankResponseInfo(ResponseStruct, kw_only=True):
    """``additionalInfo`` of a transfer answer; ``amount`` is plain text on the sandbox."""

    session_id: str | None = None
    amount: str | Amount | None = None


class TransferBankResponse(SnapResponse, kw_only=True):
    """Answer of ``transfer-bank``."""

    __essential__: ClassVar[frozenset[str]] = frozenset({"reference_no", "partner_reference_no"})

    reference_no: str | None = None
    partner_reference_no: str | None = None
    transaction_date: str | None = None
    reference_number: str | None = None
    additional_info: TransferBankResponseInfo | None = None


# --- check status ---------------------------------------------------------------------------


class TransactionStatus:
    """``latestTransactionStatus`` values and their meaning. Unknown codes are tolerated."""

    SUCCESS: Final = "00"
    INITIATED: Final = "01"
    PAYING: Final = "02"
    PENDING: Final = "03"
    REFUNDED: Final = "04"
    CANCELED: Final = "05"
    FAILED: Final = "06"
    NOT_FOUND: Final = "07"

    DESCRIPTIONS: Final = {
        "00": "success",
        "01": "initiated",
        "02": "paying",
        "03": "pending",
        "04": "refunded",
        "05": "canceled",
        "06": "failed",
        "07": "not found",
    }
    IN_PROGRESS: Final = frozenset({"01", "02", "03"})
    UNSUCCESSFUL: Final = frozenset({"04", "05", "06"})

    @classmethod
    def describe(cls, code: str) -> str:
        """A word for ``code``; ``"unknown (XX)"`` for codes DOKU has not documented."""
        return cls.DESCRIPTIONS.get(code, f"unknown ({code})")

    @classmethod
    def is_final(cls, code: str) -> bool:
        """Whether ``code`` will not change any more (success, refunded, canceled, failed)."""
        return code == cls.SUCCESS or code in cls.UNSUCCESSFUL


class CheckStatusRequest(RequestStruct, kw_only=True):
    """Body of the check-status call."""

    original_partner_reference_no: str
    original_reference_no: str | None = None
    original_external_id: str | None = None
    service_code: str


class CheckStatusResponse(SnapResponse, kw_only=True):
    """Answer of the check-status call. Dates stay text: DOKU sends malformed ones."""

    __essential__: ClassVar[frozenset[str]] = frozenset(
        {
            "original_reference_no",
            "original_partner_reference_no",
            "latest_transaction_status",
            "amount",
        }
    )

    original_reference_no: str | None = None
    original_partner_reference_no: str | None = None
    service_code: str | int | None = None
    latest_transaction_status: str | int | None = None
    amount: Amount | None = None
    transaction_date: str | None = None
    original_response_code: str | int | None = None
    original_response_message: str | None = None
    transaction_status_desc: str | None = None
    session_id: str | None = None
    additional_info: Any = None
    """Free-form, as sent."""

    @property
    def transaction_status(self) -> str:
        """``latestTransactionStatus`` as two-digit text (``""`` when absent)."""
        return normalize_code(self.latest_transaction_status, 2)

    @property
    def status_description(self) -> str:
        """A word for :attr:`transaction_status`, see :class:`TransactionStatus`."""
        return TransactionStatus.describe(self.transaction_status)


# --- the SDK's own transfer result ----------------------------------------------------------


class TransferResult(msgspec.Struct, kw_only=True):
    """What ``transfer_bank`` settled on, in the states of :class:`~doku_async.PayoutState`.

    Attributes:
        status: ``"succeeded"`` only once DOKU confirmed the payout (check status ``00``);
            ``"accepted"`` when DOKU accepted it (``2004300``) and no confirmation was had (or
            asked for: ``confirm=False``); ``"pending"`` while DOKU says initiated, paying or
            unpaid (it can still fail: watch for the notification or reconcile);
            ``"refunded"`` when its money already came back. A failed or canceled transfer
            raises :class:`~doku_async.TransferFailedError` instead (nothing paid).
        partner_reference_no: your reference, the transfer's idempotency key.
        external_id: the ``X-EXTERNAL-ID`` of the transfer's last send.
        reference_no: DOKU's reference (``referenceNo``, e.g. ``DK0018353``), when known: a
            Refund notification names the payout by it alone, so keep it with your record.
        transaction_status: ``latestTransactionStatus`` of the check status that settled it.
        response: DOKU's transfer answer, when one arrived.
        status_response: the check-status answer that confirmed or settled the outcome.
        resent: the transfer was sent a second time, with the same ``partnerReferenceNo``,
            after check status reported it not found.
        reported_amount: the amount check status reported for this reference when it differs
            from the amount sent (a fee included, or the reference used before for another
            amount); ``None`` when they agree. DOKU's status for the reference stands either
            way: reconcile the difference, never pay again.
    """

    status: str
    partner_reference_no: str
    external_id: str
    reference_no: str | None = None
    transaction_status: str | None = None
    response: TransferBankResponse | None = None
    status_response: CheckStatusResponse | None = None
    resent: bool = False
    reported_amount: Decimal | None = None

    @property
    def succeeded(self) -> bool:
        """Whether DOKU confirmed the payout (``status == "succeeded"``); an accepted or
        pending transfer is not (yet) paid."""
        return self.status == "succeeded"
