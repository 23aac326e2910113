"""An independent fake of DOKU's Non-SNAP APIs (Payout Link, Transfers, RDL), for tests.

Everything here is re-derived from the protocol notes (``/work/shared/docs/doku-protocol.md``,
section "Non-SNAP signature") and DOKU's Payout Link, Transfers and RDL pages, using only
``hashlib``, ``hmac``, ``base64`` and ``json``. It deliberately does not import ``doku_async``:
the point is to check the SDK's signatures (requests and responses), its ``Request-Id``
idempotency handling and its money formatting against a second implementation.

Usage::

    fake = FakeNonSnap(client_id="MCH-1", client_secret="SK-1")
    async with serve(fake.app) as base_url:
        ...  # point the SDK at base_url
    assert fake.effects_count("transfer", "INV/1") == 1

Behaviour in short:

* Requests are verified (``Client-Id``, ``Request-Id``, ``Request-Timestamp``, ``Signature``,
  ``Content-Type``) before anything else; injected faults apply only to verified requests.
* Every committed answer of a writing operation (2xx, and 4xx business answers such as
  validation errors or duplicates) is stored under its ``Request-Id``. The same ``Request-Id``
  with the same path and body is answered HTTP 409 with the original response bytes; with a
  different body it is answered 409 ``duplicate_request_id``. Payout status calls are reads and
  are never stored.
* A business key (payout ``reference_id``, transfer ``invoice_number``, RDL ``transaction.id``)
  reused under a new ``Request-Id`` is answered 409 ``duplicate_reference``.
* Responses carry ``Client-Id``, ``Request-Id``, ``Response-Timestamp`` and, when
  ``sign_responses``, a ``Signature`` over the exact response bytes.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from http import HTTPStatus
from typing import Any, Final

from aiohttp import web
from fakedoku import BackgroundWork, RecordedCall, serve

__all__ = [
    "FAULTS",
    "OPS",
    "PATHS",
    "PAYOUT_STATES",
    "FakeNonSnap",
    "RecordedCall",
    "non_snap_component",
    "non_snap_digest",
    "non_snap_signature",
    "serve",
    "verify_non_snap_signature",
]

_log = logging.getLogger(__name__)

#: URL path of every operation.
PATHS: Final[dict[str, str]] = {
    "payout_initiate": "/v1/payout/initiate",
    "payout_status": "/v1/payout/status",
    "transfer": "/sac-merchant/v1/transfers",
    "rdl": "/sac-rdl/v1/rdl-disbursements",
}
OPS: Final = frozenset(PATHS)
_PAYOUT_LINK_OPS: Final = frozenset({"payout_initiate", "payout_status"})

FAULTS: Final = frozenset(
    {
        "http",
        "http_after_commit",
        "drop_before_commit",
        "drop_after_commit",
        "delay",
        "unsigned",
    }
)

#: Payout Link status -> the ``state`` reported by the status call.
PAYOUT_STATES: Final[dict[str, str]] = {
    "PENDING": "GENERATED",
    "EMAIL_SENT": "GENERATED",
    "EMAIL_LINK_OPENED": "GENERATED",
    "PENDING_PROCESS": "PROCES",
    "CONFIRMED": "PROCES",
    "COMPLETED": "DONE",
    "FAILED": "DONE",
    "EXPIRED": "DONE",
}

_WIB: Final = timezone(timedelta(hours=7))
_TIMESTAMP_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_PHONE_RE: Final = re.compile(r"62[0-9]{7,12}")
_EMAIL_RE: Final = re.compile(r".*@.*", re.DOTALL)
_RDL_ID_RE: Final = re.compile(r"[A-Za-z0-9\-:._]{1,64}")
_MAX_PAYOUT_AMOUNT: Final = Decimal(10) ** 16  # "max length 16.2"
_FAULT_MESSAGES: Final[dict[int, str]] = {500: "Internal Error", 408: "Time out"}

_PAYOUT_INITIATE_FIELDS: Final = frozenset(
    {
        "amount",
        "sender_name",
        "receiver_name",
        "receiver_phone_number",
        "receiver_email",
        "reference_id",
        "description",
        "currency",
    }
)


# --------------------------------------------------------------------------- pure helpers


def non_snap_digest(body: bytes) -> str:
    """``base64(sha256(body))``: the ``Digest`` line of the signed component."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def non_snap_component(
    client_id: str,
    request_id: str,
    timestamp: str,
    target: str,
    body: bytes | None,
    *,
    timestamp_header: str = "Request-Timestamp",
) -> str:
    """The newline-joined component that is MAC'ed (no ``Digest`` line when ``body`` is None)."""
    lines = [
        f"Client-Id:{client_id}",
        f"Request-Id:{request_id}",
        f"{timestamp_header}:{timestamp}",
        f"Request-Target:{target}",
    ]
    if body is not None:
        lines.append(f"Digest:{non_snap_digest(body)}")
    return "\n".join(lines)


def non_snap_signature(
    secret: str,
    client_id: str,
    request_id: str,
    timestamp: str,
    target: str,
    body: bytes | None,
    *,
    algorithm: str = "sha256",
    timestamp_header: str = "Request-Timestamp",
) -> str:
    """``"HMACSHA256=" + base64(HMAC-SHA256(secret, component))`` (or the SHA-512 variant)."""
    if algorithm == "sha256":
        digestmod = hashlib.sha256
    elif algorithm == "sha512":
        digestmod = hashlib.sha512
    else:
        raise ValueError(f"unsupported algorithm {algorithm!r}")
    component = non_snap_component(
        client_id, request_id, timestamp, target, body, timestamp_header=timestamp_header
    )
    mac = hmac.new(secret.encode("utf-8"), component.encode("utf-8"), digestmod).digest()
    return f"HMAC{algorithm.upper()}=" + base64.b64encode(mac).decode("ascii")


def verify_non_snap_signature(
    provided: str,
    secret: str,
    client_id: str,
    request_id: str,
    timestamp: str,
    target: str,
    body: bytes | None,
    *,
    algorithm: str = "sha256",
    timestamp_header: str = "Request-Timestamp",
) -> bool:
    """Constant-time comparison of ``provided`` with the expected signature."""
    expected = non_snap_signature(
        secret,
        client_id,
        request_id,
        timestamp,
        target,
        body,
        algorithm=algorithm,
        timestamp_header=timestamp_header,
    )
    return hmac.compare_digest(expected.encode("ascii"), _bytes(provided))


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "replace")


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _valid_timestamp(value: str) -> bool:
    """ISO-8601 UTC with seconds and a ``Z``: ``2020-08-11T08:45:42Z`` (no fractions)."""
    if _TIMESTAMP_RE.fullmatch(value) is None:
        return False
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    return True


def _encode(payload: Any) -> bytes:
    """Compact JSON; ``Decimal`` values become raw JSON numbers with their exact text."""
    token = secrets.token_hex(8)
    numbers: dict[str, str] = {}

    def convert(value: Any) -> Any:
        if isinstance(value, Decimal):
            placeholder = f"__decimal_{token}_{len(numbers)}__"
            numbers[f'"{placeholder}"'] = str(value)
            return placeholder
        if isinstance(value, dict):
            return {key: convert(item) for key, item in value.items()}
        if isinstance(value, list):
            return [convert(item) for item in value]
        return value

    text = json.dumps(convert(payload), separators=(",", ":"), ensure_ascii=False)
    for placeholder, number in numbers.items():
        text = text.replace(placeholder, number)
    return text.encode("utf-8")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _loads(raw: bytes) -> Any:
    """Strict JSON: decimals as ``Decimal``, no NaN/Infinity, no duplicate keys."""
    return json.loads(
        raw,
        parse_float=Decimal,
        parse_constant=_no_constants,
        object_pairs_hook=_no_duplicate_keys,
    )


def _get(body: Any, dotted: str) -> Any:
    current = body
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    signed: bool = True
    headers: dict[str, str] | None = None


class _Drop:
    """Marker: close the connection without answering."""


_DROP: Final = _Drop()
_Outcome = _Answer | _Drop


class _Reject(Exception):
    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Answer:
    return _Answer(status, _encode(payload), headers=headers)


def _bad_request(errors: list[dict[str, str]]) -> _Reject:
    return _Reject(_json(400, {"status": "FAILED", "message": "Bad Request", "errors": errors}))


def _error(status: int, code: str, message: str) -> _Reject:
    return _Reject(_json(status, {"error": {"code": code, "message": message}}))


def _duplicate_reference(field: str, key: str) -> _Reject:
    return _error(409, "duplicate_reference", f"{field} {key!r} was already used")


@dataclass(frozen=True)
class _Replay:
    path: str
    body_hash: bytes
    status: int
    body: bytes


@dataclass(frozen=True)
class _Fault:
    kind: str
    delay: float
    http_status: int | None
    body: dict[str, Any] | None
    retry_after: str | None


# --------------------------------------------------------------------------- validation


def _load_object(raw: bytes) -> dict[str, Any]:
    try:
        body = _loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _bad_request([{"field": "body", "message": f"invalid JSON: {exc}"}]) from None
    if not isinstance(body, dict):
        raise _bad_request([{"field": "body", "message": "must be a JSON object"}])
    return body


class _Validator:
    """Collects field errors; on error the returned placeholders are never used."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []
        self._failed_objects: list[str] = []

    def error(self, field: str, message: str) -> None:
        if any(field.startswith(prefix + ".") for prefix in self._failed_objects):
            return
        self.errors.append({"field": field, "message": message})

    def check(self) -> None:
        if self.errors:
            raise _bad_request(self.errors)

    def only(self, obj: dict[str, Any], prefix: str, allowed: frozenset[str]) -> None:
        for key in obj:
            if key not in allowed:
                self.error(prefix + key, "unknown field")

    def obj(
        self, parent: dict[str, Any], name: str, allowed: frozenset[str]
    ) -> tuple[dict[str, Any], str]:
        """The sub-object ``name`` and the prefix of its fields (``"name."``)."""
        value = parent.get(name)
        if name not in parent or not isinstance(value, dict):
            self.error(name, "is required" if name not in parent else "must be an object")
            self._failed_objects.append(name)
            return {}, name + "."
        self.only(value, name + ".", allowed)
        return value, name + "."

    def string(
        self,
        obj: dict[str, Any],
        prefix: str,
        name: str,
        low: int,
        high: int,
        *,
        pattern: re.Pattern[str] | None = None,
        message: str = "invalid format",
    ) -> str:
        field = prefix + name
        if name not in obj:
            self.error(field, "is required")
            return ""
        return self._check_string(obj[name], field, low, high, pattern, message)

    def optional_string(
        self, obj: dict[str, Any], prefix: str, name: str, low: int, high: int
    ) -> str | None:
        if name not in obj:
            return None
        return self._check_string(obj[name], prefix + name, low, high, None, "")

    def _check_string(
        self,
        value: Any,
        field: str,
        low: int,
        high: int,
        pattern: re.Pattern[str] | None,
        message: str,
    ) -> str:
        if not isinstance(value, str):
            self.error(field, "must be a string")
            return ""
        if not low <= len(value) <= high:
            self.error(field, f"length must be between {low} and {high}")
            return ""
        if pattern is not None and pattern.fullmatch(value) is None:
            self.error(field, message)
            return ""
        return value

    def integer(self, obj: dict[str, Any], prefix: str, name: str, low: int, high: int) -> int:
        field = prefix + name
        if name not in obj:
            self.error(field, "is required")
            return 0
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(field, "must be a JSON integer")
            return 0
        if not low <= value <= high:
            self.error(field, f"must be between {low} and {high}")
            return 0
        return value

    def payout_amount(self, obj: dict[str, Any], name: str) -> Decimal:
        """A positive JSON number with at most 2 decimals and at most 16 integer digits."""
        if name not in obj:
            self.error(name, "is required")
            return Decimal(0)
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            self.error(name, "must be a JSON number")
            return Decimal(0)
        amount = Decimal(value)
        exponent = amount.as_tuple().exponent
        if not isinstance(exponent, int) or exponent < -2:
            self.error(name, "must have at most 2 decimals")
            return Decimal(0)
        if not Decimal(0) < amount < _MAX_PAYOUT_AMOUNT:
            self.error(name, "must be positive with at most 16 integer digits")
            return Decimal(0)
        return amount


# --------------------------------------------------------------------------- the fake


class FakeNonSnap(BackgroundWork):
    """DOKU's Non-SNAP server side (Payout Link, Transfers, RDL), in memory, with faults."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        payout_link_scheme: str = "sha256",
        sign_responses: bool = True,
        balance: int = 10_000_000_000,
    ) -> None:
        if payout_link_scheme not in ("sha256", "sha512"):
            raise ValueError("payout_link_scheme must be 'sha256' or 'sha512'")
        self.client_id = client_id
        self.client_secret = client_secret
        self.payout_link_scheme = payout_link_scheme
        self.sign_responses = sign_responses
        #: Sub-account balance that transfers debit (RDL disbursements do not touch it).
        self.balance = balance

        self.calls: list[RecordedCall] = []
        self.payout_links: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.rdl: dict[str, dict[str, Any]] = {}
        #: Descriptions of unexpected exceptions inside the fake (should stay empty).
        self.errors: list[str] = []

        self._replays: dict[str, _Replay] = {}
        self._effects: dict[tuple[str, str], int] = {}
        self._faults: dict[str, deque[_Fault]] = {op: deque() for op in OPS}
        self._forge = 0
        super().__init__()
        self._next_transaction = 1

        self.app = web.Application()
        for op, path in PATHS.items():
            self.app.router.add_post(path, self._route(op))
        self.app.router.add_route("*", "/{tail:.*}", self._route("unknown"))
        self.app.on_cleanup.append(self._on_cleanup)

    # ------------------------------------------------------------------ public helpers

    @staticmethod
    def path(op: str) -> str:
        """The URL path the fake serves ``op`` on."""
        return PATHS[op]

    def algorithm(self, op: str) -> str:
        """The HMAC algorithm (``"sha256"`` / ``"sha512"``) used for ``op``'s signatures."""
        return self.payout_link_scheme if op in _PAYOUT_LINK_OPS else "sha256"

    def calls_for(self, op: str) -> list[RecordedCall]:
        return [call for call in self.calls if call.op == op]

    def effects_count(self, op: str, key: str) -> int:
        """How many times an effect was committed for ``key`` (reference / invoice / id)."""
        return self._effects.get((op, key), 0)

    def set_payout_status(self, reference_id: str, status: str) -> None:
        """Move a payout link to ``status`` (any text; unknown ones report state UNKNOWN)."""
        record = self.payout_links[reference_id]
        record["status"] = status
        record["modified_time"] = _utc_now()

    def inject(
        self,
        op: str,
        fault: str,
        *,
        times: int = 1,
        delay: float = 0.0,
        http_status: int | None = None,
        body: dict[str, Any] | None = None,
        retry_after: str | None = None,
    ) -> None:
        """Queue ``fault`` for the next ``times`` calls of ``op`` that pass verification."""
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}")
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        if times < 1:
            raise ValueError("times must be >= 1")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        for _ in range(times):
            self._faults[op].append(_Fault(fault, delay, http_status, body, retry_after))

    def pending_faults(self, op: str) -> int:
        return len(self._faults[op])

    def forge_next_response_signature(self, times: int = 1) -> None:
        """The next ``times`` answered responses carry a well-formed but WRONG ``Signature``."""
        if times < 1:
            raise ValueError("times must be >= 1")
        self._forge += times

    # ------------------------------------------------------------------ plumbing

    async def _handle(self, op: str, request: web.Request) -> web.StreamResponse:
        call = RecordedCall(op, request.path, dict(request.headers), b"", 0, "")
        self.calls.append(call)
        try:
            call.body = raw = await request.read()
            if op == "unknown":
                outcome: _Outcome = _json(
                    404, {"error": {"code": "not_found", "message": "Not Found"}}
                )
            else:
                outcome = await self._operation(op, request, raw)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errors.append(f"{op}: {exc!r}")
            _log.warning("fake_nonsnap: unexpected error in %s", op, exc_info=True)
            outcome = _json(500, {"status": "FAILED", "message": f"Fake internal error: {exc!r}"})

        if isinstance(outcome, _Drop):
            transport = request.transport
            if transport is not None:
                transport.close()
            # Writing to the closed transport raises a ConnectionError, which aiohttp treats
            # as a premature client disconnection (quietly, no 500, nothing logged as error).
            return web.Response(status=204)
        call.status = outcome.status
        call.response_code = str(outcome.status)
        return web.Response(
            status=outcome.status,
            body=outcome.body,
            content_type="application/json",
            headers=self._response_headers(op, request, outcome),
        )

    def _response_headers(self, op: str, request: web.Request, answer: _Answer) -> dict[str, str]:
        request_id = request.headers.get("Request-Id", "")
        timestamp = _utc_now()
        headers = {"Client-Id": self.client_id, "Response-Timestamp": timestamp}
        if request_id:
            headers["Request-Id"] = request_id
        if answer.headers:
            headers.update(answer.headers)
        if not answer.signed:
            return headers
        if self._forge > 0:
            self._forge -= 1
            secret = self.client_secret + "-forged"
        elif self.sign_responses:
            secret = self.client_secret
        else:
            return headers
        headers["Signature"] = non_snap_signature(
            secret,
            self.client_id,
            request_id,
            timestamp,
            request.path,
            answer.body,
            algorithm=self.algorithm(op),
            timestamp_header="Response-Timestamp",
        )
        return headers

    async def _operation(self, op: str, request: web.Request, raw: bytes) -> _Outcome:
        try:
            request_id = self._verify_request(op, request, raw)
        except _Reject as rejection:
            return rejection.answer
        path = request.path
        return await self._with_fault(op, raw, lambda: self._process(op, path, request_id, raw))

    def _verify_request(self, op: str, request: web.Request, raw: bytes) -> str:
        """Client-Id, Request-Id, Request-Timestamp, Signature, Content-Type; the Request-Id."""
        headers = request.headers
        client_id = headers.get("Client-Id", "")
        if not hmac.compare_digest(_bytes(client_id), _bytes(self.client_id)):
            raise _error(401, "invalid_client_id", "Invalid Client-Id")
        request_id = headers.get("Request-Id")
        if request_id is None or not 1 <= len(request_id) <= 128:
            raise _bad_request([{"field": "Request-Id", "message": "must be 1 to 128 characters"}])
        timestamp = headers.get("Request-Timestamp")
        if timestamp is None or not _valid_timestamp(timestamp):
            raise _bad_request(
                [
                    {
                        "field": "Request-Timestamp",
                        "message": "must be ISO-8601 UTC like 2020-08-11T08:45:42Z",
                    }
                ]
            )
        if not verify_non_snap_signature(
            headers.get("Signature", ""),
            self.client_secret,
            self.client_id,
            request_id,
            timestamp,
            request.path,
            raw,
            algorithm=self.algorithm(op),
        ):
            raise _error(401, "invalid_signature", "Invalid Signature")
        if request.content_type != "application/json":
            raise _bad_request([{"field": "Content-Type", "message": "must be application/json"}])
        return request_id

    async def _with_fault(self, op: str, raw: bytes, process: Callable[[], _Answer]) -> _Outcome:
        """Run ``process`` (the commit + real answer) under the next injected fault, if any."""
        queue = self._faults[op]
        if not queue:
            return process()
        fault = queue.popleft()
        if fault.kind == "http":
            return self._fault_answer(op, raw, fault)
        if fault.kind == "drop_before_commit":
            return _DROP
        if fault.kind == "http_after_commit":
            process()
            return self._fault_answer(op, raw, fault)
        if fault.kind == "drop_after_commit":
            process()
            return _DROP
        if fault.kind == "unsigned":
            return dataclasses.replace(process(), signed=False)
        # "delay": sleep, then commit and answer, even if the client has gone away.
        return await self._shielded(self._delayed(op, fault.delay, process))

    async def _delayed(self, op: str, delay: float, process: Callable[[], _Answer]) -> _Outcome:
        await asyncio.sleep(delay)
        try:
            return process()
        except Exception as exc:  # never leave an unretrieved exception in a task
            self.errors.append(f"{op} (delayed): {exc!r}")
            _log.warning("fake_nonsnap: unexpected error in delayed %s", op, exc_info=True)
            return _json(500, {"status": "FAILED", "message": repr(exc)})

    @staticmethod
    def _fault_answer(op: str, raw: bytes, fault: _Fault) -> _Answer:
        status = fault.http_status if fault.http_status is not None else 500
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
        if fault.body is not None:
            return _json(status, fault.body, headers)
        try:
            message = _FAULT_MESSAGES.get(status) or HTTPStatus(status).phrase
        except ValueError:
            message = "Injected"
        payload = {
            "status": "FAILED",
            "message": message,
            "data": {"reference_id": _business_key(op, raw)},
        }
        return _json(status, payload, headers)

    # ------------------------------------------------------------------ operations

    def _process(self, op: str, path: str, request_id: str, raw: bytes) -> _Answer:
        """Idempotency, validation and commit; stores the replay entry for writes."""
        if op == "payout_status":  # a read: never stored, never replayed
            try:
                return self._payout_status(raw)
            except _Reject as rejection:
                return rejection.answer
        body_hash = hashlib.sha256(raw).digest()
        replay = self._replays.get(request_id)
        if replay is not None:
            if replay.path == path and hmac.compare_digest(replay.body_hash, body_hash):
                return _Answer(409, replay.body)
            return _error(
                409, "duplicate_request_id", "Request-Id was already used for a different request"
            ).answer
        operation = {
            "payout_initiate": self._payout_initiate,
            "transfer": self._transfer,
            "rdl": self._rdl,
        }[op]
        try:
            answer = operation(raw, request_id)
        except _Reject as rejection:
            answer = rejection.answer
        self._replays[request_id] = _Replay(path, body_hash, answer.status, answer.body)
        return answer

    def _commit(self, op: str, key: str) -> None:
        self._effects[(op, key)] = self._effects.get((op, key), 0) + 1

    def _payout_initiate(self, raw: bytes, request_id: str) -> _Answer:
        body = _load_object(raw)
        v = _Validator()
        v.only(body, "", _PAYOUT_INITIATE_FIELDS)
        amount = v.payout_amount(body, "amount")
        sender_name = v.string(body, "", "sender_name", 1, 50)
        receiver_name = v.string(body, "", "receiver_name", 1, 50)
        phone = v.string(
            body,
            "",
            "receiver_phone_number",
            9,
            14,
            pattern=_PHONE_RE,
            message="must be digits starting with 62",
        )
        email = v.string(
            body, "", "receiver_email", 1, 50, pattern=_EMAIL_RE, message="must contain @"
        )
        reference_id = v.string(body, "", "reference_id", 1, 30)
        description = v.optional_string(body, "", "description", 1, 30)
        currency = v.optional_string(body, "", "currency", 1, 3)
        v.check()
        if reference_id in self.payout_links:
            raise _duplicate_reference("reference_id", reference_id)

        now = _utc_now()
        transaction_id = f"PL{self._next_transaction:010d}"
        self._next_transaction += 1
        record: dict[str, Any] = {
            "reference_id": reference_id,
            "transaction_id": transaction_id,
            "status": "PENDING",
            "amount": amount,
            "sender_name": sender_name,
            "receiver_name": receiver_name,
            "receiver_phone_number": phone,
            "receiver_email": email,
            "description": description,
            "currency": currency,
            "created_time": now,
            "modified_time": now,
            "request_id": request_id,
        }
        self.payout_links[reference_id] = record
        self._commit("payout_initiate", reference_id)
        return _json(
            200,
            {
                "status": "SUCCESS",
                "message": "Payout link created",
                "timestamp": now,
                "data": _payout_data(record, with_state=False),
            },
        )

    def _payout_status(self, raw: bytes) -> _Answer:
        body = _load_object(raw)
        v = _Validator()
        v.only(body, "", frozenset({"transaction_id"}))
        reference_id = v.string(body, "", "transaction_id", 1, 30)
        v.check()
        record = self.payout_links.get(reference_id)
        if record is None:
            return _json(
                404,
                {
                    "status": "FAILED",
                    "message": "Transaction not found",
                    "data": {"transaction_id": reference_id},
                },
            )
        return _json(
            200,
            {
                "status": "SUCCESS",
                "message": "Payout link status",
                "timestamp": _utc_now(),
                "data": _payout_data(record, with_state=True),
            },
        )

    def _transfer(self, raw: bytes, request_id: str) -> _Answer:
        body = _load_object(raw)
        v = _Validator()
        v.only(body, "", frozenset({"transfer"}))
        transfer, prefix = v.obj(
            body, "transfer", frozenset({"origin", "destination", "amount", "invoice_number"})
        )
        origin = v.string(transfer, prefix, "origin", 1, 40)
        destination = v.string(transfer, prefix, "destination", 1, 40)
        amount = v.integer(transfer, prefix, "amount", 1, 999_999_999_999)
        invoice_number = v.string(transfer, prefix, "invoice_number", 1, 100)
        v.check()
        if invoice_number in self.transfers:
            raise _duplicate_reference("invoice_number", invoice_number)
        if amount > self.balance:
            raise _bad_request([{"field": "transfer.amount", "message": "insufficient balance"}])

        self.balance -= amount
        record: dict[str, Any] = {
            "invoice_number": invoice_number,
            "origin": origin,
            "destination": destination,
            "amount": amount,
            "status": "SUCCESS",
            "created": datetime.now(_WIB).strftime("%Y-%m-%d %H:%M:%S.%f+07:00"),
        }
        self.transfers[invoice_number] = {**record, "request_id": request_id}
        self._commit("transfer", invoice_number)
        return _json(200, {"transfer": record})

    def _rdl(self, raw: bytes, request_id: str) -> _Answer:
        body = _load_object(raw)
        v = _Validator()
        v.only(body, "", frozenset({"transaction", "source_account", "account_destination"}))
        transaction, tx = v.obj(body, "transaction", frozenset({"id", "amount", "description"}))
        transaction_id = v.string(
            transaction,
            tx,
            "id",
            1,
            64,
            pattern=_RDL_ID_RE,
            message="allowed characters: letters, digits and - : . _",
        )
        amount = v.integer(transaction, tx, "amount", 10_000, 999_999_999_999)
        description = v.string(transaction, tx, "description", 1, 256)
        source, src = v.obj(body, "source_account", frozenset({"account_id"}))
        account_id = v.string(source, src, "account_id", 1, 100)
        destination, dst = v.obj(
            body,
            "account_destination",
            frozenset({"code", "account_bank_number", "account_bank_name", "address"}),
        )
        code = v.string(destination, dst, "code", 1, 50)
        bank_number = v.string(destination, dst, "account_bank_number", 1, 100)
        bank_name = v.string(destination, dst, "account_bank_name", 1, 50)
        address = v.string(destination, dst, "address", 1, 50)
        v.check()
        if transaction_id in self.rdl:
            raise _duplicate_reference("transaction.id", transaction_id)

        now = _utc_now()
        payload: dict[str, Any] = {
            "transaction": {
                "amount": amount,
                "description": description,
                "status": "PENDING",
                "create_date": now,
                "update_date": now,
                "id": transaction_id,
            },
            "source_account": {"account_id": account_id},
            "account_destination": {
                "account_bank_number": bank_number,
                "account_bank_name": bank_name,
                "code": code,
                "address": address,
            },
        }
        self.rdl[transaction_id] = {**copy.deepcopy(payload), "request_id": request_id}
        self._commit("rdl", transaction_id)
        return _json(200, payload)


def _payout_data(record: dict[str, Any], *, with_state: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "reference_id": record["reference_id"],
        "transaction_id": record["transaction_id"],
        "status": record["status"],
    }
    if with_state:
        data["state"] = PAYOUT_STATES.get(record["status"], "UNKNOWN")
    for name in (
        "amount",
        "sender_name",
        "receiver_name",
        "receiver_phone_number",
        "receiver_email",
        "created_time",
        "modified_time",
    ):
        data[name] = record[name]
    return data


def _business_key(op: str, raw: bytes) -> str:
    """The request's business key, best effort ("" when the body cannot tell)."""
    dotted = {
        "payout_initiate": "reference_id",
        "payout_status": "transaction_id",
        "transfer": "transfer.invoice_number",
        "rdl": "transaction.id",
    }[op]
    try:
        value = _get(_loads(raw), dotted)
    except (ValueError, RecursionError):
        return ""
    return value if isinstance(value, str) else ""
