"""The simulator's SNAP side (Kirim DOKU): B2B token, account inquiry, balance inquiry, transfer
and check status.

It owns the issued tokens, the SNAP answer shapes (``docs``, ``sandbox`` or ``mixed``), the bank
code table and the registered account names. It verifies every token request's RSA signature and
every call's HMAC-SHA512 with the SDK's own :mod:`doku_async._signing`, checks the protocol's
rules against the ledger, and books transfers there.
"""

from __future__ import annotations

import math
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from .. import _constants as C
from .._banks import BankCodes
from .._names import names_match
from .._signing import HmacKey, load_public_key, verify_snap_signature, verify_token_signature
from ._ledger import Ledger
from ._records import (
    RENAMED_ACCOUNT_NAME,
    RENAMED_ACCOUNT_OTHER_NAME,
    RENAMED_ACCOUNT_SUFFIX,
    TWO,
    WIB,
    ApplyFault,
    Clock,
    Handler,
    Reply,
    Route,
    SimulatedTransfer,
    SimulatorCredentials,
    json_object,
    snap_error,
)

__all__ = ["SnapApi"]

_OPERATIONS: dict[str, tuple[str, str]] = {
    C.ACCOUNT_INQUIRY_SUFFIX: ("account_inquiry", C.SERVICE_ACCOUNT_INQUIRY),
    C.BALANCE_INQUIRY_SUFFIX: ("balance_inquiry", C.SERVICE_BALANCE_INQUIRY),
    C.TRANSFER_BANK_SUFFIX: ("transfer_bank", C.SERVICE_TRANSFER_BANK),
    C.CHECK_STATUS_SUFFIX: ("check_status", C.SERVICE_CHECK_STATUS),
}
_REQUIRED_HEADERS = ("X-TIMESTAMP", "X-SIGNATURE", "X-EXTERNAL-ID", "CHANNEL-ID", "X-PARTNER-ID")
_STATUS_DESCRIPTIONS = {
    "00": "Transaction is successfully processed",
    "03": "Transaction is pending (unpaid)",
    "04": "Transaction is refunded",
    "06": "Transaction is failed",
}

_Operation = Callable[[dict[str, Any], str, str], Reply]
"""An operation's commit: the body, the ``X-EXTERNAL-ID`` and the service code in."""


class SnapApi:
    """The Kirim DOKU endpoints of the simulator."""

    def __init__(
        self,
        credentials: SimulatorCredentials,
        ledger: Ledger,
        apply_fault: ApplyFault,
        on_transfer: Callable[[SimulatedTransfer], None],
        *,
        token_ttl: float,
        shapes: str,
        bank_codes: BankCodes,
        registered_names: Mapping[str, str],
    ) -> None:
        self._credentials = credentials
        self._ledger = ledger
        self._clock: Clock = ledger.clock
        self._apply_fault = apply_fault
        self._on_transfer = on_transfer
        self.token_ttl = token_ttl
        self.shapes = shapes
        self._shape_turn = 0
        self.bank_codes = bank_codes
        self.registered_names: dict[str, str] = dict(registered_names)
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.token_requests = 0
        self._public_key = load_public_key(credentials.public_key_pem)
        self._snap_key = HmacKey(credentials.client_secret, "sha512")

    def routes(self) -> Iterator[Route]:
        """The token endpoint, then each operation under every Kirim DOKU path family."""
        yield C.TOKEN_PATH, "token", self._token
        for family in C.KIRIM_FAMILIES:
            for suffix, (op, service) in _OPERATIONS.items():
                yield family + suffix, op, self._handler(op, service)

    def expire_tokens(self) -> None:
        """Expire every issued token."""
        for token in self.tokens:
            self.tokens[token] = 0.0

    # --- token ---------------------------------------------------------------------------

    async def _token(self, request: web.Request, raw: bytes) -> Reply:
        service = C.SERVICE_TOKEN
        headers = request.headers
        client_id = headers.get("X-CLIENT-KEY", "")
        ts = headers.get("X-TIMESTAMP", "")
        signature = headers.get("X-SIGNATURE", "")
        if not client_id or not ts or not signature:
            raise snap_error(400, service, "02", "Invalid Mandatory Field")
        if client_id != self._credentials.client_id:
            raise snap_error(401, service, "00", "Unauthorized. Unknown client")
        self._clock.check(ts, service)
        if not verify_token_signature(self._public_key, client_id, ts, signature):
            raise snap_error(401, service, "00", "Unauthorized. Signature")
        body = json_object(raw, service)
        if body.get("grantType") != "client_credentials":
            raise snap_error(400, service, "02", "Invalid Mandatory Field grantType")
        return await self._apply_fault("token", service, self._issue_token)

    def _issue_token(self) -> Reply:
        token = "eyJ" + secrets.token_urlsafe(32)
        self.tokens[token] = time.monotonic() + self.token_ttl
        self.token_requests += 1
        return Reply(
            200,
            {
                "responseCode": "2007300",
                "responseMessage": "Successful",
                "accessToken": token,
                "tokenType": "Bearer",
                "expiresIn": max(1, math.ceil(self.token_ttl)),
                "additionalInfo": "",  # a string, as DOKU's SDKs' token DTOs type it
            },
        )

    # --- the operations ------------------------------------------------------------------

    def _handler(self, op: str, service: str) -> Handler:
        operation: _Operation = getattr(self, f"_{op}")

        async def handle(request: web.Request, raw: bytes) -> Reply:
            external_id = self._verify(request, raw, service)
            body = json_object(raw, service)

            def commit() -> Reply:
                if not self._ledger.claim_external_id(external_id):
                    raise snap_error(409, service, "00", "Conflict. X-EXTERNAL-ID already used")
                return operation(body, external_id, service)

            try:
                return await self._apply_fault(op, service, commit)
            except Reply as reply:
                return reply

        return handle

    def _verify(self, request: web.Request, raw: bytes, service: str) -> str:
        """Check the token, the headers and the signature; the ``X-EXTERNAL-ID``."""
        headers = request.headers
        auth = headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        expiry = self.tokens.get(token)
        if expiry is None:
            raise snap_error(401, service, "03", "Unauthorized. Token not found")
        if expiry <= time.monotonic():
            raise snap_error(401, service, "01", "Invalid Token (B2B)")
        for name in _REQUIRED_HEADERS:
            if not headers.get(name):
                raise snap_error(400, service, "02", f"Invalid Mandatory Field {name}")
        if headers["X-PARTNER-ID"] != self._credentials.client_id:
            raise snap_error(401, service, "00", "Unauthorized. Unknown partner")
        external_id = headers["X-EXTERNAL-ID"]
        if not (external_id.isascii() and external_id.isdigit() and len(external_id) <= 36):
            raise snap_error(400, service, "01", "Invalid Field Format X-EXTERNAL-ID")
        ts = headers["X-TIMESTAMP"]
        self._clock.check(ts, service)
        if not verify_snap_signature(
            self._snap_key, request.method, request.path, token, raw, ts, headers["X-SIGNATURE"]
        ):
            raise snap_error(401, service, "00", "Unauthorized. Signature")
        return external_id

    def _account_inquiry(self, body: dict[str, Any], external_id: str, service: str) -> Reply:
        info = _require_obj(body, "additionalInfo", service)
        amount = _require_obj(body, "amount", service)
        for name, value in (
            ("customerNumber", body.get("customerNumber")),
            ("beneficiaryAccountNumber", body.get("beneficiaryAccountNumber")),
            ("amount.value", amount.get("value")),
            ("amount.currency", amount.get("currency")),
            ("additionalInfo.beneficiaryBankCode", info.get("beneficiaryBankCode")),
            ("additionalInfo.beneficiaryAccountName", info.get("beneficiaryAccountName")),
            ("additionalInfo.senderCountryCode", info.get("senderCountryCode")),
        ):
            if not isinstance(value, str) or not value:
                raise snap_error(400, service, "02", f"Invalid Mandatory Field {name}")
        bank = info["beneficiaryBankCode"]
        bank_name = self._bank_name(bank, service)
        session_id = self._ledger.open_session()
        value = _money(amount["value"], service)
        docs = self._docs_shape()
        return Reply(
            200,
            {
                "responseCode": _success_code(service, docs),
                "responseMessage": "Successful",
                "referenceNo": session_id,
                "partnerReferenceNo": body.get("partnerReferenceNo", ""),
                "beneficiaryAccountNumber": body["beneficiaryAccountNumber"],
                "beneficiaryAccountName": self._registered_name(
                    body["beneficiaryAccountNumber"], info["beneficiaryAccountName"]
                ),
                "beneficiaryBankCode": bank,
                "beneficiaryBankShortName": bank_name,
                "beneficiaryBankName": bank_name,
                "amount": {"value": f"{value}", "currency": amount["currency"]},
                "sessionId": session_id,
                "additionalInfo": _inquiry_extra(info, value) if docs else {"forex": {}, "fee": {}},
            },
        )

    def _bank_name(self, code: str, service: str) -> str:
        """The bank's name, or DOKU's invalid-field answer for a code it does not know."""
        name = self.bank_codes.name_of(code)
        if name is None:
            raise snap_error(400, service, "01", "Invalid Field Format beneficiaryBankCode")
        return name

    def _registered_name(self, account: str, sent: str) -> str:
        """The name the account's bank has: ``registered_names``, the magic account, or the
        name that was sent (uppercased, as DOKU answers)."""
        if account in self.registered_names:
            return self.registered_names[account]
        if account.endswith(RENAMED_ACCOUNT_SUFFIX):
            if names_match(sent, RENAMED_ACCOUNT_NAME).ok:
                return RENAMED_ACCOUNT_OTHER_NAME
            return RENAMED_ACCOUNT_NAME
        return sent.upper()

    def _balance_inquiry(self, body: dict[str, Any], external_id: str, service: str) -> Reply:
        account = body.get("accountNo")
        if not isinstance(account, str) or not account:
            raise snap_error(400, service, "02", "Invalid Mandatory Field accountNo")
        balances = self._ledger.balances
        if account not in balances:
            raise snap_error(404, service, "11", "Invalid Account")
        docs = self._docs_shape()
        available = {"value": f"{balances[account]}", "currency": "IDR"}
        hold = {"value": "0.00", "currency": "IDR"}
        return Reply(
            200,
            {
                "responseCode": _success_code(service, docs),
                "responseMessage": "Successful",
                "accountNo": account,
                "name": "Simulator Indo Agent",
                # The docs: one object, "avaliableBalance" (sic); the sandbox: an array.
                "accountInfos": {"holdAmount": hold, "avaliableBalance": available}
                if docs
                else [{"holdAmount": hold, "availableBalance": available}],
                "additionalInfo": {"creditAlertLimit": {"value": "65000.00", "currency": "IDR"}},
            },
        )

    def _transfer_bank(self, body: dict[str, Any], external_id: str, service: str) -> Reply:
        amount = _require_obj(body, "amount", service)
        for name in (
            "partnerReferenceNo",
            "customerNumber",
            "beneficiaryAccountNumber",
            "beneficiaryBankCode",
        ):
            if not isinstance(body.get(name), str) or not body[name]:
                raise snap_error(400, service, "02", f"Invalid Mandatory Field {name}")
        value = _transfer_amount(amount, service)
        self._bank_name(body["beneficiaryBankCode"], service)
        reference = body["partnerReferenceNo"]
        session_id = body.get("sessionId") or ""
        if reference in self._ledger.transfers:
            raise snap_error(409, service, "01", "Conflict. partnerReferenceNo already used")
        if session_id and self._ledger.session_used(session_id):
            raise snap_error(409, service, "02", "Transaction already processed")
        if value > self._ledger.balances[self._credentials.agent_key]:
            raise snap_error(403, service, "14", "Insufficient Funds")
        transfer = self._ledger.commit_transfer(
            reference=reference,
            external_id=external_id,
            amount=value,
            account=body["beneficiaryAccountNumber"],
            bank=body["beneficiaryBankCode"],
            session_id=session_id,
        )
        self._on_transfer(transfer)
        return Reply(
            200,
            {
                "responseCode": _success_code(service, self._docs_shape()),
                "responseMessage": "Successful",
                "referenceNo": transfer.reference_no,
                "partnerReferenceNo": reference,
                "transactionDate": datetime.fromtimestamp(transfer.created_at, WIB).isoformat(
                    timespec="seconds"
                ),
                "referenceNumber": str(uuid.uuid4()),
                "additionalInfo": {"sessionId": session_id, "amount": f"{value}"},
            },
        )

    def _check_status(self, body: dict[str, Any], external_id: str, service: str) -> Reply:
        reference = body.get("originalPartnerReferenceNo")
        if not isinstance(reference, str) or not reference:
            raise snap_error(
                400, service, "02", "Invalid Mandatory Field originalPartnerReferenceNo"
            )
        if not isinstance(body.get("serviceCode"), str):
            raise snap_error(400, service, "02", "Invalid Mandatory Field serviceCode")
        transfer = self._ledger.transfers.get(reference)
        head = {
            "responseCode": _success_code(service, self._docs_shape()),
            "responseMessage": "Successful",
        }
        if transfer is None:
            return Reply(
                200,
                {
                    **head,
                    "originalPartnerReferenceNo": reference,
                    "serviceCode": 43,
                    "latestTransactionStatus": "07",
                    "transactionStatusDesc": "Transaction not found",
                },
            )
        return Reply(
            200,
            {
                **head,
                "originalReferenceNo": transfer.reference_no,
                "originalPartnerReferenceNo": reference,
                "serviceCode": 43,  # a number, as DOKU's sample sends
                "latestTransactionStatus": transfer.status,
                "amount": {"value": f"{transfer.amount}", "currency": "IDR"},
                "transactionDate": _malformed_date(transfer.created_at),
                "originalResponseCode": 0,
                "originalResponseMessage": "Transfer Approve",
                "transactionStatusDesc": _STATUS_DESCRIPTIONS.get(transfer.status, "Unknown"),
                "sessionId": transfer.session_id,
                "additionalInfo": {"remark": "", "beneficiaryAmount": f"{transfer.amount}"},
            },
        )

    def _docs_shape(self) -> bool:
        """Whether this answer takes the docs' shape (``False``: the live sandbox's)."""
        if self.shapes == "mixed":
            self._shape_turn += 1
            return self._shape_turn % 2 == 1
        return self.shapes == "docs"


def _success_code(service: str, docs: bool) -> int | str:
    """``200xx00``: a JSON number in DOKU's Kirim examples, text on the sandbox."""
    code = f"200{service}00"
    return int(code) if docs else code


def _inquiry_extra(info: dict[str, Any], value: Decimal) -> dict[str, Any]:
    """The docs' ``additionalInfo`` of an account inquiry answer."""
    return {
        "senderCountryCode": info["senderCountryCode"],
        "forexRate": "1.00",
        "forexOriginCurrency": "IDR",
        "feeAmount": "4500.00",
        "feeCurrency": "IDR",
        "beneficiaryAmount": f"{value}",
        "referenceNumber": str(uuid.uuid4()),
    }


def _malformed_date(created_at: float) -> str:
    """DOKU's malformed check status ``transactionDate``, on purpose."""
    text = datetime.fromtimestamp(created_at, WIB).strftime("%Y-%m-%dT%H:%M:%S. %f+07:00")
    return text[:-9] + "+07:00"


def _require_obj(body: dict[str, Any], name: str, service: str) -> dict[str, Any]:
    value = body.get(name)
    if not isinstance(value, dict):
        raise snap_error(400, service, "02", f"Invalid Mandatory Field {name}")
    return value


def _transfer_amount(amount: dict[str, Any], service: str) -> Decimal:
    """A transfer's ``amount.value``: text with two decimals, above zero."""
    text = amount.get("value")
    if not isinstance(text, str) or len(text.rpartition(".")[2]) != 2 or "." not in text:
        raise snap_error(400, service, "01", "Invalid Field Format amount.value")
    value = _money(text, service)
    if value <= 0:
        raise snap_error(400, service, "01", "Invalid Field Format amount.value")
    return value


def _money(text: str, service: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise snap_error(400, service, "01", "Invalid Field Format amount.value") from None
    if not value.is_finite():
        raise snap_error(400, service, "01", "Invalid Field Format amount.value")
    return value.quantize(TWO)
