"""The simulator's HTTP admin routes, under ``/_simulator/`` (no DOKU path starts so).

They let a test written in any language, or in another process, inspect and steer a running
simulator the way :class:`DokuSimulator`'s methods do in process:

* ``GET /_simulator/ledger``: the balance and every Kirim DOKU transfer (reference, amount,
  status, state, ``times_paid``), with ``paid_twice`` listing the references committed more
  than once (always empty unless something is badly wrong).
* ``GET /_simulator/requests``: the request log, without headers or bodies (no secrets, no
  signatures); ``?operation=transfer_bank`` filters it.
* ``GET /_simulator/notifications``: the notifications sent and how they were answered.
* ``GET /_simulator/faults``, ``POST`` (queue one fault or a list, JSON: the arguments of
  :meth:`DokuSimulator.inject`), ``DELETE`` (drop every queued fault).
* ``POST /_simulator/notify``: send a transfer's Unpaid or Refund notification now.

Every answer is JSON; amounts are decimal strings. A bad request gets 400 with ``error``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, cast

import msgspec
from aiohttp import web

from .._states import PayoutState
from ._faults import FAULT_KINDS, OPERATIONS, Fault, FaultKind, FaultPlan
from ._ledger import Ledger
from ._records import DeliveredNotification, RecordedRequest

__all__ = ["ADMIN_PREFIX", "AdminApi", "Notify"]

ADMIN_PREFIX = "/_simulator"
"""The path prefix of the admin routes."""

_MAX_TIMES = 100_000
_MAX_DELAY = 600.0
_REFERENCE_FIELDS = (
    "partnerReferenceNo",
    "originalPartnerReferenceNo",
    "reference_id",
    "transaction_id",
)

Notify = Callable[[str, str, bool], "asyncio.Future[DeliveredNotification | None]"]
"""Starts a notification (reference, kind, failed) and returns its delivery to await."""


class _FaultRequest(msgspec.Struct, forbid_unknown_fields=True):
    operation: str
    kind: str
    times: int = 1
    status: int = 500
    response_code: str = ""
    retry_after: str | None = None
    delay: float = 0.0


class _NotifyRequest(msgspec.Struct, forbid_unknown_fields=True):
    reference: str
    kind: str = "unpaid"
    failed: bool = False
    wait: bool = True


_fault_decoder = msgspec.json.Decoder(_FaultRequest | list[_FaultRequest])
_notify_decoder = msgspec.json.Decoder(_NotifyRequest)
_encoder = msgspec.json.Encoder()


def _answer(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=_encoder.encode(payload), content_type="application/json"
    )


def _bad(message: str) -> web.Response:
    return _answer({"error": message}, 400)


class AdminApi:
    """The admin routes over the simulator's parts."""

    def __init__(
        self,
        ledger: Ledger,
        faults: FaultPlan,
        requests: list[RecordedRequest],
        notifications: Callable[[], list[DeliveredNotification]],
        notify: Notify,
    ) -> None:
        self._ledger = ledger
        self._faults = faults
        self._requests = requests
        self._notifications = notifications
        self._notify = notify

    def add_routes(self, app: web.Application) -> None:
        """Register the routes under :data:`ADMIN_PREFIX`."""
        p = ADMIN_PREFIX
        app.router.add_get(f"{p}/ledger", self._get_ledger)
        app.router.add_get(f"{p}/requests", self._get_requests)
        app.router.add_get(f"{p}/notifications", self._get_notifications)
        app.router.add_get(f"{p}/faults", self._get_faults)
        app.router.add_post(f"{p}/faults", self._post_faults)
        app.router.add_delete(f"{p}/faults", self._delete_faults)
        app.router.add_post(f"{p}/notify", self._post_notify)

    async def _get_ledger(self, request: web.Request) -> web.Response:
        ledger = self._ledger
        transfers = [
            {
                "reference": t.partner_reference_no,
                "reference_no": t.reference_no,
                "amount": t.amount,
                "account": t.beneficiary_account_number,
                "bank": t.beneficiary_bank_code,
                "status": t.status,
                "state": PayoutState.from_check_status(t.status),
                "times_paid": ledger.commits.get(t.partner_reference_no, 0),
            }
            for t in ledger.transfers.values()
        ]
        return _answer(
            {
                "agent_key": ledger.agent_key,
                "balance": ledger.balances[ledger.agent_key],
                "transfers": transfers,
                "paid_twice": sorted(ref for ref, n in ledger.commits.items() if n > 1),
            }
        )

    async def _get_requests(self, request: web.Request) -> web.Response:
        operation = request.query.get("operation")
        if operation is not None and operation not in OPERATIONS:
            return _bad(f"unknown operation {operation!r}; one of {sorted(OPERATIONS)}")
        rows = [
            {
                "method": "POST",
                "path": r.path,
                "operation": r.operation,
                "reference": _reference(r.body),
                "status": r.status,
                "response_code": r.response_code,
            }
            for r in self._requests
            if operation is None or r.operation == operation
        ]
        return _answer({"requests": rows})

    async def _get_notifications(self, request: web.Request) -> web.Response:
        rows = [
            {
                "kind": n.kind,
                "url": n.url,
                "body": n.body,
                "attempts": n.attempts,
                "acknowledged": n.acknowledged,
                "responses": n.responses,
            }
            for n in self._notifications()
        ]
        return _answer({"notifications": rows})

    def _pending(self) -> dict[str, int]:
        counts = {op: self._faults.pending(op) for op in sorted(OPERATIONS)}
        return {op: n for op, n in counts.items() if n}

    async def _get_faults(self, request: web.Request) -> web.Response:
        return _answer({"pending": self._pending()})

    async def _delete_faults(self, request: web.Request) -> web.Response:
        self._faults.clear()
        return _answer({"pending": {}})

    async def _post_faults(self, request: web.Request) -> web.Response:
        try:
            decoded = _fault_decoder.decode(await request.read())
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            return _bad(f"body must be a fault object or a list of them: {exc}")
        wanted = decoded if isinstance(decoded, list) else [decoded]
        checked: list[tuple[str, Fault, int]] = []
        for item in wanted:
            problem = _fault_problem(item)
            if problem:
                return _bad(problem)
            fault = Fault(
                cast(FaultKind, item.kind),  # checked by _fault_problem
                status=item.status,
                response_code=item.response_code,
                retry_after=item.retry_after,
                delay=item.delay,
            )
            checked.append((item.operation, fault, item.times))
        for operation, fault, times in checked:  # all checked first: none or all are queued
            self._faults.add(operation, fault, times)
        return _answer({"pending": self._pending()})

    async def _post_notify(self, request: web.Request) -> web.Response:
        try:
            wanted = _notify_decoder.decode(await request.read())
        except msgspec.DecodeError as exc:
            return _bad(f"body must be {{'reference': ..., 'kind': ...}}: {exc}")
        try:
            delivery = self._notify(wanted.reference, wanted.kind, wanted.failed)
        except (KeyError, ValueError) as exc:
            return _bad(str(exc.args[0]) if exc.args else str(exc))
        if not wanted.wait:
            return _answer({"queued": True}, 202)
        record = await asyncio.shield(delivery)  # a caller that leaves does not cut it short
        if record is None:
            return _answer({"delivered": False}, 200)
        return _answer(
            {
                "delivered": True,
                "acknowledged": record.acknowledged,
                "attempts": record.attempts,
                "responses": record.responses,
            }
        )


def _fault_problem(item: _FaultRequest) -> str:
    """What is wrong with a requested fault ("" when nothing)."""
    if item.operation not in OPERATIONS:
        return f"unknown operation {item.operation!r}; one of {sorted(OPERATIONS)}"
    if item.kind not in FAULT_KINDS:
        return f"unknown fault kind {item.kind!r}; one of {sorted(FAULT_KINDS)}"
    if not 1 <= item.times <= _MAX_TIMES:
        return f"times must be between 1 and {_MAX_TIMES}"
    if not 100 <= item.status <= 599:
        return "status must be an HTTP status (100-599)"
    if not 0 <= item.delay <= _MAX_DELAY:
        return f"delay must be between 0 and {_MAX_DELAY:g} seconds"
    return ""


def _reference(body: bytes) -> str:
    """The request's own reference, read from its JSON body ("" when none)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(data, dict):
        return ""
    for name in _REFERENCE_FIELDS:
        if isinstance(data.get(name), str):
            return str(data[name])
    transfer, transaction = data.get("transfer"), data.get("transaction")
    if isinstance(transfer, dict) and isinstance(transfer.get("invoice_number"), str):
        return str(transfer["invoice_number"])
    if isinstance(transaction, dict) and isinstance(transaction.get("id"), str):
        return str(transaction["id"])
    return ""
