"""The simulator's Non-SNAP side: Payout Link (initiate, status), Transfers between
sub-accounts, and RDL disbursements.

It owns the Non-SNAP keys (HMAC-SHA256, or SHA-512 for Payout Link when asked), whether answers
are signed, and the ``Request-Id`` replays: a money-moving request sent again with the same
``Request-Id`` and body gets its first answer back (HTTP 409), with another body a conflict. It
verifies and signs with the SDK's own :mod:`doku_async._signing` and books into the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from .. import _constants as C
from .. import _serde
from .._signing import HmacKey, body_sha256_hex, non_snap_signature, verify_non_snap_signature
from ._ledger import Ledger
from ._records import (
    WIB,
    ApplyFault,
    Handler,
    Reply,
    Route,
    SimulatorCredentials,
    json_object,
    nonsnap_error,
)

__all__ = ["NonSnapApi"]

_MONEY_MOVING = frozenset({"payout_link_initiate", "transfers", "rdl"})
_REQUIRED_HEADERS = ("Client-Id", "Request-Id", "Request-Timestamp", "Signature")
_LINK_PEOPLE = ("sender_name", "receiver_name", "receiver_phone_number", "receiver_email")
_LINK_STATES = {
    "COMPLETED": "DONE",
    "FAILED": "DONE",
    "EXPIRED": "DONE",
    "CONFIRMED": "PROCES",
    "PENDING_PROCESS": "PROCES",
}


@dataclass(slots=True)
class _Stored:
    """The first answer to a money-moving ``Request-Id``."""

    body_hash: str
    status: int
    payload: bytes


class NonSnapApi:
    """The Payout Link, Transfers and RDL endpoints of the simulator."""

    def __init__(
        self,
        credentials: SimulatorCredentials,
        ledger: Ledger,
        apply_fault: ApplyFault,
        *,
        sign_responses: bool,
        payout_link_scheme: str,
    ) -> None:
        self._credentials = credentials
        self._ledger = ledger
        self._clock = ledger.clock
        self._apply_fault = apply_fault
        self.sign_responses = sign_responses
        self._sha256 = HmacKey(credentials.client_secret, "sha256")
        self._link_key = (
            self._sha256
            if payout_link_scheme == "sha256"
            else HmacKey(credentials.client_secret, "sha512")
        )
        self._replays: dict[str, _Stored] = {}

    def routes(self) -> Iterator[Route]:
        """Each Non-SNAP endpoint."""
        for path, op, operation in (
            (C.PAYOUT_LINK_INITIATE_PATH, "payout_link_initiate", self._payout_initiate),
            (C.PAYOUT_LINK_STATUS_PATH, "payout_link_status", self._payout_status),
            (C.SAC_TRANSFERS_PATH, "transfers", self._sub_account_transfer),
            (C.RDL_DISBURSEMENTS_PATH, "rdl", self._rdl),
        ):
            yield path, op, self._handler(op, operation)

    def _handler(self, op: str, operation: Callable[[dict[str, Any]], Reply]) -> Handler:
        key = self._link_key if op.startswith("payout_link") else self._sha256
        money_moving = op in _MONEY_MOVING

        async def handle(request: web.Request, raw: bytes) -> Reply:
            request_id = request.headers.get("Request-Id", "")
            try:
                self._verify(request, raw, key)
                body = json_object(raw, "00", nonsnap=True)
                stored = self._replays.get(request_id) if money_moving else None
                if stored is not None:
                    reply = _replay(stored, raw)
                else:

                    def commit() -> Reply:
                        result = operation(body)
                        if money_moving:
                            self._replays[request_id] = _Stored(
                                body_sha256_hex(raw),
                                result.status,
                                _serde.encode_numbers(result.payload),
                            )
                        return result

                    reply = await self._apply_fault(op, "00", lambda: _catching(commit))
            except Reply as exc:
                reply = exc
            self._sign(reply, request, request_id, key)
            return reply

        return handle

    def _verify(self, request: web.Request, raw: bytes, key: HmacKey) -> None:
        headers = request.headers
        for name in _REQUIRED_HEADERS:
            if not headers.get(name):
                raise nonsnap_error(400, "missing_header", f"{name} is required")
        if headers["Client-Id"] != self._credentials.client_id:
            raise nonsnap_error(401, "invalid_client_id", "Unknown Client-Id")
        if len(headers["Request-Id"]) > C.REQUEST_ID_MAX:
            raise nonsnap_error(400, "invalid_request_id", "Request-Id too long")
        try:
            self._clock.check(headers["Request-Timestamp"], "00", require_utc=True)
        except Reply as exc:
            raise nonsnap_error(
                exc.status, "invalid_timestamp", str(exc.payload["responseMessage"])
            ) from None
        ok = verify_non_snap_signature(
            key,
            headers["Client-Id"],
            headers["Request-Id"],
            headers["Request-Timestamp"],
            request.path,
            raw,
            headers["Signature"],
            timestamp_header="Request-Timestamp",
        )
        if not ok:
            raise nonsnap_error(401, "invalid_signature", "Invalid Signature")

    def _sign(self, reply: Reply, request: web.Request, request_id: str, key: HmacKey) -> None:
        if not self.sign_responses:
            return
        payload = _serde.encode_numbers(reply.payload)
        ts = self._clock.iso_now()
        client_id = self._credentials.client_id
        reply.headers.update(
            {
                "Client-Id": client_id,
                "Request-Id": request_id,
                "Response-Timestamp": ts,
                "Signature": non_snap_signature(
                    key,
                    client_id,
                    request_id,
                    ts,
                    request.path,
                    payload,
                    timestamp_header="Response-Timestamp",
                ),
            }
        )

    def _payout_initiate(self, body: dict[str, Any]) -> Reply:
        fields = _fields(
            body,
            {
                "sender_name": 50,
                "receiver_name": 50,
                "receiver_phone_number": 14,
                "receiver_email": 50,
                "reference_id": 30,
            },
        )
        amount = body.get("amount")
        if not isinstance(amount, Decimal) or amount <= 0 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
            raise nonsnap_error(400, "invalid_amount", "amount must be a number with 2 decimals")
        reference = fields["reference_id"]
        if reference in self._ledger.payout_links:
            raise nonsnap_error(409, "duplicate_reference", "reference_id already used")
        link = self._ledger.create_payout_link(
            reference, amount, {k: fields[k] for k in _LINK_PEOPLE}
        )
        return Reply(
            200,
            {
                "status": "SUCCESS",
                "message": "Payout link created",
                "timestamp": link["created_time"],
                "data": _public_link(link),
            },
        )

    def _payout_status(self, body: dict[str, Any]) -> Reply:
        reference = _fields(body, {"transaction_id": 30})["transaction_id"]
        link = self._ledger.payout_links.get(reference)
        if link is None:
            raise nonsnap_error(
                404, "not_found", "Transaction not found", data={"transaction_id": reference}
            )
        data = {**_public_link(link), "state": _LINK_STATES.get(link["status"], "GENERATED")}
        return Reply(
            200,
            {
                "status": "SUCCESS",
                "message": "Payout link status",
                "timestamp": self._clock.iso_now(),
                "data": data,
            },
        )

    def _sub_account_transfer(self, body: dict[str, Any]) -> Reply:
        transfer = body.get("transfer")
        if not isinstance(transfer, dict):
            raise nonsnap_error(400, "invalid_body", "transfer is required")
        fields = _fields(transfer, {"origin": 40, "destination": 40, "invoice_number": 100})
        amount = transfer.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount < 10**12:
            raise nonsnap_error(400, "invalid_amount", "transfer.amount must be a positive integer")
        invoice = fields["invoice_number"]
        ledger = self._ledger
        if invoice in ledger.sub_account_transfers:
            raise nonsnap_error(409, "duplicate_reference", "invoice_number already used")
        if amount > ledger.sub_account_funds(fields["origin"]):
            raise nonsnap_error(400, "insufficient_balance", "insufficient balance")
        ledger.move_sub_account_funds(fields["origin"], fields["destination"], amount)
        record = {
            **fields,
            "amount": amount,
            "status": "SUCCESS",
            "created": datetime.fromtimestamp(self._clock.now(), WIB).isoformat(sep=" "),
        }
        ledger.sub_account_transfers[invoice] = record
        return Reply(200, {"transfer": record})

    def _rdl(self, body: dict[str, Any]) -> Reply:
        txn = body.get("transaction")
        source = body.get("source_account")
        dest = body.get("account_destination")
        if not (isinstance(txn, dict) and isinstance(source, dict) and isinstance(dest, dict)):
            raise nonsnap_error(
                400,
                "invalid_body",
                "transaction, source_account and account_destination are required",
            )
        t = _fields(txn, {"id": 64, "description": 256})
        s = _fields(source, {"account_id": 100})
        d = _fields(
            dest, {"code": 50, "account_bank_number": 100, "account_bank_name": 50, "address": 50}
        )
        amount = txn.get("amount")
        if (
            not isinstance(amount, int)
            or isinstance(amount, bool)
            or not 10_000 <= amount <= 999_999_999_999
        ):
            raise nonsnap_error(400, "invalid_amount", "transaction.amount out of range")
        if t["id"] in self._ledger.rdl_disbursements:
            raise nonsnap_error(409, "duplicate_reference", "transaction.id already used")
        now = self._clock.iso_now()
        record = {
            "transaction": {
                "amount": amount,
                "description": t["description"],
                "status": "PENDING",
                "create_date": now,
                "update_date": now,
                "id": t["id"],
            },
            "source_account": s,
            "account_destination": d,
        }
        self._ledger.rdl_disbursements[t["id"]] = record
        return Reply(200, record)


def _replay(stored: _Stored, raw: bytes) -> Reply:
    """The first answer again (HTTP 409), or a conflict when the body differs."""
    if stored.body_hash != body_sha256_hex(raw):
        raise nonsnap_error(409, "duplicate_request_id", "Request-Id reused with another body")
    return Reply(409, json.loads(stored.payload, parse_float=Decimal))


def _fields(body: dict[str, Any], limits: dict[str, int]) -> dict[str, str]:
    """The named text fields, each 1 to its limit characters long."""
    out: dict[str, str] = {}
    for name, limit in limits.items():
        value = body.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= limit:
            raise nonsnap_error(400, "invalid_field", f"{name} must be 1-{limit} characters")
        out[name] = value
    return out


def _public_link(link: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in link.items() if k != "history"}


def _catching(commit: Callable[[], Reply]) -> Reply:
    try:
        return commit()
    except Reply as reply:
        return reply
