"""An independent fake of DOKU's Kirim DOKU SNAP API, for tests.

Everything here is re-derived from the protocol notes (``/work/shared/docs/doku-protocol.md``)
and DOKU's Kirim DOKU page, using only ``hashlib``, ``hmac``, ``base64`` and ``cryptography``.
It deliberately does not import ``doku_async``: the point is to check the SDK's signatures and
money handling against a second implementation.

Usage::

    fake = FakeDoku(client_id="C", client_secret="S", public_key_pem=pub)
    async with serve(fake.app) as base_url:
        ...  # point the SDK at base_url
    assert fake.transfers_count("ref-1") == 1
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "FAULTS",
    "OPS",
    "SERVICE_CODES",
    "FakeDoku",
    "RecordedCall",
    "TransferRecord",
    "generate_rsa_keypair",
    "minify_json",
    "serve",
    "snap_signature",
    "token_string_to_sign",
    "verify_token_signature",
]

_log = logging.getLogger(__name__)

TOKEN_PATH: Final = "/authorization/v1/access-token/b2b"

#: SNAP service code of every operation (the middle two digits of a ``responseCode``).
SERVICE_CODES: Final[dict[str, str]] = {
    "token": "73",
    "account_inquiry": "42",
    "balance_inquiry": "11",
    "transfer_bank": "43",
    "check_status": "53",
}
OPS: Final = frozenset(SERVICE_CODES)

#: Path of every SNAP operation below ``path_prefix``.
SNAP_PATHS: Final[dict[str, str]] = {
    "account_inquiry": "/emoney/bank-account-inquiry",
    "balance_inquiry": "/balance-inquiry",
    "transfer_bank": "/emoney/transfer-bank",
    "check_status": "/qr/qr-mpm-status",
}

FAULTS: Final = frozenset(
    {
        "http",
        "http_after_commit",
        "drop_before_commit",
        "drop_after_commit",
        "delay",
        "delay_after_commit",
    }
)

_TRANSFER_DATE: Final = "2022-11-11T10:51:48+07:00"
_STATUS_DATE: Final = "2024-09-17T14:41:52. 022+07:00"  # malformed on purpose (sandbox quirk)
_AMOUNT_RE: Final = re.compile(r"[0-9]+\.[0-9]{2}")
_EXTERNAL_ID_RE: Final = re.compile(r"[0-9]{1,36}")
_ISO_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_BANK_NAMES: Final[dict[str, str]] = {
    "002": "Bank Rakyat Indonesia BRI",
    "008": "Bank Mandiri",
    "009": "Bank Negara Indonesia BNI",
    "014": "Bank Central Asia BCA",
}
_STATUS_TEXT: Final[dict[str, tuple[str, str]]] = {
    # latestTransactionStatus -> (originalResponseMessage, transactionStatusDesc)
    "00": ("Transfer Approve", "Transaction is successfully processed"),
    "03": ("Transfer Pending", "Transaction is pending"),
}


# --------------------------------------------------------------------------- pure helpers


def snap_signature(
    secret: str, method: str, path: str, token: str, body: bytes, timestamp: str
) -> str:
    """``base64(HMAC-SHA512(secret, METHOD:PATH:TOKEN:hex(sha256(body)):TIMESTAMP))``."""
    body_hash = hashlib.sha256(body).hexdigest().lower()
    string_to_sign = f"{method.upper()}:{path}:{token}:{body_hash}:{timestamp}"
    mac = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha512)
    return base64.b64encode(mac.digest()).decode("ascii")


def token_string_to_sign(client_id: str, timestamp: str) -> bytes:
    """What the merchant signs with its RSA key to get a B2B token: ``clientId|timestamp``."""
    return f"{client_id}|{timestamp}".encode()


def verify_token_signature(
    public_key: rsa.RSAPublicKey, client_id: str, timestamp: str, signature_b64: str
) -> bool:
    """RSA PKCS#1 v1.5 / SHA-256 verification of the token request's ``X-SIGNATURE``."""
    try:
        signature = base64.b64decode(signature_b64.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return False
    try:
        public_key.verify(
            signature,
            token_string_to_sign(client_id, timestamp),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        return False
    return True


def minify_json(raw: bytes) -> bytes:
    """Re-minify a JSON document the way DOKU does (compact, key order kept, raw UTF-8)."""
    return json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def generate_rsa_keypair() -> tuple[bytes, bytes]:
    """A fresh 2048-bit key pair: (PKCS#8 private PEM, SubjectPublicKeyInfo public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    return private_pem, public_pem


def _parse_timestamp(value: str) -> datetime | None:
    """An ISO-8601 date-time with seconds and an explicit offset (``Z`` or ``±HH:MM``)."""
    if _ISO_RE.fullmatch(value) is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _get(body: dict[str, Any], dotted: str) -> Any:
    current: Any = body
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) and yield its base URL; clean up on exit."""
    runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- records


@dataclass
class RecordedCall:
    op: str  # "token" | "account_inquiry" | "balance_inquiry" | "transfer_bank" | "check_status"
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # HTTP status answered (0 if the connection was dropped before answering)
    response_code: str  # e.g. "2004300", "" if dropped


@dataclass
class TransferRecord:
    partner_reference_no: str
    external_id: str
    reference_no: str
    amount: str
    beneficiary_account_number: str
    beneficiary_bank_code: str
    status: str  # latestTransactionStatus: "00" success, "03" pending
    session_id: str = ""  # extra: the sessionId sent with the transfer ("" when none)


@dataclass
class _Fault:
    kind: str
    delay: float
    retry_after: str | None
    response_code: str | None
    http_status: int | None


@dataclass
class _Answer:
    status: int
    payload: dict[str, Any]
    headers: dict[str, str] | None = None

    @property
    def response_code(self) -> str:
        return str(self.payload.get("responseCode", ""))


class _Drop:
    """Marker: close the connection without answering."""


_DROP: Final = _Drop()
_Outcome = _Answer | _Drop


class _Reject(Exception):
    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer.response_code)
        self.answer = answer


def _reject(status: int, code: str, message: str) -> _Reject:
    return _Reject(_Answer(status, {"responseCode": code, "responseMessage": message}))


# --------------------------------------------------------------------------- the fake


T = TypeVar("T")


class BackgroundWork:
    """Plumbing both fakes share: routes that record into ``_handle``, and work that keeps
    running after its client went away (the ``delay`` faults), settled or cancelled."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    async def _handle(self, op: str, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def _route(self, op: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._handle(op, request)

        return handler

    async def _shielded(self, work: Awaitable[T]) -> T:
        """Run ``work`` in its own tracked task and await it through a shield, so it finishes
        even when the client has gone away and the handler is cancelled."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def settle(self) -> None:
        """Wait for work still running after its client went away (``delay`` faults)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _on_cleanup(self, _app: web.Application) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class FakeDoku(BackgroundWork):
    """DOKU's Kirim DOKU SNAP server side, in memory, with fault injection."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        public_key_pem: bytes,
        path_prefix: str = "/v1.0",
        token_ttl: int = 900,
        balance: str = "100000000.00",
        agent_key: str = "A41879",
    ) -> None:
        key = serialization.load_pem_public_key(public_key_pem)
        if not isinstance(key, rsa.RSAPublicKey):
            raise TypeError("public_key_pem must hold an RSA public key")
        self.client_id = client_id
        self.client_secret = client_secret
        self.public_key: rsa.RSAPublicKey = key
        self.path_prefix = "/" + path_prefix.strip("/") if path_prefix.strip("/") else ""
        self.token_ttl = token_ttl
        self.balance: Decimal = Decimal(balance)
        self.agent_key = agent_key

        self.calls: list[RecordedCall] = []
        self.transfers: dict[str, TransferRecord] = {}
        self.token_requests = 0
        # The token answer's fields besides the token, as DOKU documents them (its SDKs' token
        # DTOs type additionalInfo as a string; see tests/corpus/token). Tests swap variants in.
        self.token_answer_fields: dict[str, object] = {
            "tokenType": "Bearer",
            "expiresIn": token_ttl,
            "additionalInfo": "",
        }
        #: Descriptions of unexpected exceptions inside the fake (should stay empty).
        self.errors: list[str] = []

        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._external_ids: set[str] = set()
        self._sessions_issued: set[str] = set()
        self._sessions_used: set[str] = set()
        self._creations: dict[str, int] = {}
        self._faults: dict[str, deque[_Fault]] = {op: deque() for op in OPS}
        super().__init__()
        self._next_reference = 1123220

        self.app = web.Application()
        self.app.router.add_post(TOKEN_PATH, self._route("token"))
        for op, suffix in SNAP_PATHS.items():
            self.app.router.add_post(self.path_prefix + suffix, self._route(op))
        self.app.router.add_route("*", "/{tail:.*}", self._route("unknown"))
        self.app.on_cleanup.append(self._on_cleanup)

    # ------------------------------------------------------------------ public helpers

    def path(self, op: str) -> str:
        """The URL path the fake serves ``op`` on."""
        return TOKEN_PATH if op == "token" else self.path_prefix + SNAP_PATHS[op]

    def calls_for(self, op: str) -> list[RecordedCall]:
        return [call for call in self.calls if call.op == op]

    def transfers_count(self, partner_reference_no: str) -> int:
        """How many times a transfer with this partnerReferenceNo was committed."""
        return self._creations.get(partner_reference_no, 0)

    def expire_tokens(self) -> None:
        """Every issued token becomes invalid: the next SNAP call gets ``401SS01``."""
        for token in self._tokens:
            self._tokens[token] = float("-inf")

    def inject(
        self,
        op: str,
        fault: str,
        *,
        times: int = 1,
        delay: float = 0.0,
        retry_after: str | None = None,
        response_code: str | None = None,
        http_status: int | None = None,
    ) -> None:
        """Queue ``fault`` for the next ``times`` calls of ``op`` that pass verification."""
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}")
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        if times < 1:
            raise ValueError("times must be >= 1")
        for _ in range(times):
            self._faults[op].append(_Fault(fault, delay, retry_after, response_code, http_status))

    def pending_faults(self, op: str) -> int:
        return len(self._faults[op])

    # ------------------------------------------------------------------ plumbing

    async def _handle(self, op: str, request: web.Request) -> web.StreamResponse:
        call = RecordedCall(op, request.path, dict(request.headers), b"", 0, "")
        self.calls.append(call)
        try:
            call.body = raw = await request.read()
            if op == "unknown":
                outcome: _Outcome = _Answer(
                    404, {"responseCode": "4040000", "responseMessage": "Not Found"}
                )
            elif op == "token":
                outcome = await self._token(request, raw)
            else:
                outcome = await self._snap(op, request, raw)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errors.append(f"{op}: {exc!r}")
            _log.warning("fakedoku: unexpected error in %s", op, exc_info=True)
            code = "500" + SERVICE_CODES.get(op, "00") + "00"
            outcome = _Answer(
                500, {"responseCode": code, "responseMessage": f"Fake internal error: {exc!r}"}
            )

        if isinstance(outcome, _Drop):
            transport = request.transport
            if transport is not None:
                transport.close()
            # Writing to the closed transport raises a ConnectionError, which aiohttp treats
            # as a premature client disconnection (quietly, no 500, nothing logged as error).
            return web.Response(status=204)
        call.status = outcome.status
        call.response_code = outcome.response_code
        return web.Response(
            status=outcome.status,
            body=json.dumps(outcome.payload, separators=(",", ":"), ensure_ascii=False).encode(),
            content_type="application/json",
            headers=outcome.headers,
        )

    async def _with_fault(self, op: str, process: Callable[[], _Outcome]) -> _Outcome:
        """Run ``process`` (the commit + real answer) under the next injected fault, if any."""
        queue = self._faults[op]
        if not queue:
            return process()
        fault = queue.popleft()
        if fault.kind == "http":
            return self._fault_answer(op, fault)
        if fault.kind == "drop_before_commit":
            return _DROP
        if fault.kind == "http_after_commit":
            process()
            return self._fault_answer(op, fault)
        if fault.kind == "drop_after_commit":
            process()
            return _DROP
        if fault.kind == "delay_after_commit":
            outcome = process()
            await asyncio.sleep(fault.delay)
            return outcome
        # "delay": sleep, then commit and answer, even if the client has gone away.
        return await self._shielded(self._delayed(op, fault.delay, process))

    async def _delayed(self, op: str, delay: float, process: Callable[[], _Outcome]) -> _Outcome:
        await asyncio.sleep(delay)
        try:
            return process()
        except Exception as exc:  # never leave an unretrieved exception in a task
            self.errors.append(f"{op} (delayed): {exc!r}")
            _log.warning("fakedoku: unexpected error in delayed %s", op, exc_info=True)
            code = "500" + SERVICE_CODES[op] + "00"
            return _Answer(500, {"responseCode": code, "responseMessage": repr(exc)})

    @staticmethod
    def _fault_answer(op: str, fault: _Fault) -> _Answer:
        status = fault.http_status if fault.http_status is not None else 500
        code = fault.response_code
        if code is None:
            code = f"{status}{SERVICE_CODES[op]}00"
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
        return _Answer(status, {"responseCode": code, "responseMessage": "Injected"}, headers)

    # ------------------------------------------------------------------ token

    async def _token(self, request: web.Request, raw: bytes) -> _Outcome:
        try:
            self._verify_token_request(request)
        except _Reject as rejection:
            return rejection.answer
        return await self._with_fault("token", lambda: self._issue_token(raw))

    def _verify_token_request(self, request: web.Request) -> None:
        headers = request.headers
        client_key = headers.get("X-CLIENT-KEY")
        if client_key is None:
            raise _reject(400, "4007302", "Invalid Mandatory Field X-CLIENT-KEY")
        if not hmac.compare_digest(client_key.encode(), self.client_id.encode()):
            raise _reject(401, "4017300", "Unauthorized. Unknown client")
        timestamp = headers.get("X-TIMESTAMP")
        if timestamp is None:
            raise _reject(400, "4007302", "Invalid Mandatory Field X-TIMESTAMP")
        if _parse_timestamp(timestamp) is None or not (
            timestamp.endswith("Z") or timestamp.endswith("+07:00")
        ):
            raise _reject(400, "4007301", "Invalid Field Format X-TIMESTAMP")
        signature = headers.get("X-SIGNATURE")
        if signature is None:
            raise _reject(400, "4007302", "Invalid Mandatory Field X-SIGNATURE")
        if not verify_token_signature(self.public_key, self.client_id, timestamp, signature):
            raise _reject(401, "4017300", "Unauthorized. Signature")

    def _issue_token(self, raw: bytes) -> _Answer:
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return _answer(400, "4007300", "Bad Request")
        if not isinstance(body, dict):
            return _answer(400, "4007300", "Bad Request")
        grant = body.get("grantType")
        if grant is None or grant == "":
            return _answer(400, "4007302", "Invalid Mandatory Field grantType")
        if grant != "client_credentials":
            return _answer(400, "4007301", "Invalid Field Format grantType")
        token = "eyJ" + secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic() + self.token_ttl
        self.token_requests += 1
        return _Answer(
            200,
            {
                "responseCode": "2007300",
                "responseMessage": "Successful",
                "accessToken": token,
                **self.token_answer_fields,
            },
        )

    # ------------------------------------------------------------------ SNAP calls

    async def _snap(self, op: str, request: web.Request, raw: bytes) -> _Outcome:
        service = SERVICE_CODES[op]
        try:
            external_id = self._verify_snap_request(service, request, raw)
        except _Reject as rejection:
            return rejection.answer

        def process() -> _Outcome:
            try:
                if external_id in self._external_ids:
                    raise _reject(409, f"409{service}00", "Conflict")
                self._external_ids.add(external_id)
                body = self._parse_body(service, raw)
                return self._operation(op, body, external_id)
            except _Reject as rejection:
                return rejection.answer

        return await self._with_fault(op, process)

    def _verify_snap_request(self, service: str, request: web.Request, raw: bytes) -> str:
        """Authorization, headers and signature; returns the X-EXTERNAL-ID."""
        headers = request.headers
        authorization = headers.get("Authorization", "")
        token = authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else ""
        expiry = self._tokens.get(token) if token else None
        if expiry is None:
            raise _reject(401, f"401{service}03", "Token Not Found in System")
        if time.monotonic() >= expiry:
            raise _reject(401, f"401{service}01", "Invalid Token (B2B)")

        partner_id = headers.get("X-PARTNER-ID", "")
        if not hmac.compare_digest(partner_id.encode(), self.client_id.encode()):
            raise _reject(401, f"401{service}00", "Unauthorized. Unknown client")

        for name in ("X-TIMESTAMP", "X-SIGNATURE", "X-EXTERNAL-ID", "CHANNEL-ID"):
            if name not in headers:
                raise _reject(400, f"400{service}02", f"Invalid Mandatory Field {name}")
        if headers["CHANNEL-ID"] == "":
            raise _reject(400, f"400{service}02", "Invalid Mandatory Field CHANNEL-ID")
        external_id = headers["X-EXTERNAL-ID"]
        if _EXTERNAL_ID_RE.fullmatch(external_id) is None:
            raise _reject(400, f"400{service}01", "Invalid Field Format X-EXTERNAL-ID")
        timestamp = headers["X-TIMESTAMP"]
        if _parse_timestamp(timestamp) is None:
            raise _reject(400, f"400{service}01", "Invalid Field Format X-TIMESTAMP")

        path = request.raw_path.split("?", 1)[0]
        expected = snap_signature(
            self.client_secret, request.method, path, token, raw, timestamp
        ).encode()
        provided = headers["X-SIGNATURE"].encode("utf-8", "replace")
        if not hmac.compare_digest(expected, provided):
            raise _reject(401, f"401{service}00", "Unauthorized. Signature")
        return external_id

    @staticmethod
    def _parse_body(service: str, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw)
            minified = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        except (ValueError, RecursionError):
            raise _reject(400, f"400{service}00", "Bad Request. Invalid JSON") from None
        if not isinstance(body, dict):
            raise _reject(400, f"400{service}00", "Bad Request. JSON object expected")
        if raw != minified:
            raise _reject(400, f"400{service}00", "Bad Request. Body is not minified JSON")
        return body

    @staticmethod
    def _require(service: str, body: dict[str, Any], fields: tuple[str, ...]) -> dict[str, str]:
        values: dict[str, str] = {}
        for field in fields:
            value = _get(body, field)
            if value is None or value == "":
                raise _reject(400, f"400{service}02", f"Invalid Mandatory Field {{{field}}}")
            if not isinstance(value, str):
                raise _reject(400, f"400{service}01", f"Invalid Field Format {{{field}}}")
            values[field] = value
        return values

    def _operation(self, op: str, body: dict[str, Any], external_id: str) -> _Answer:
        if op == "account_inquiry":
            return self._account_inquiry(body)
        if op == "balance_inquiry":
            return self._balance_inquiry(body)
        if op == "transfer_bank":
            return self._transfer_bank(body, external_id)
        return self._check_status(body)

    @staticmethod
    def _optional_str(service: str, body: dict[str, Any], field: str) -> str:
        value = _get(body, field)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise _reject(400, f"400{service}01", f"Invalid Field Format {{{field}}}")
        return value

    def _account_inquiry(self, body: dict[str, Any]) -> _Answer:
        fields = self._require(
            "42",
            body,
            (
                "customerNumber",
                "beneficiaryAccountNumber",
                "additionalInfo.beneficiaryBankCode",
                "additionalInfo.beneficiaryAccountName",
                "additionalInfo.senderCountryCode",
                "amount.value",
                "amount.currency",
            ),
        )
        value = fields["amount.value"]
        if _AMOUNT_RE.fullmatch(value) is None:
            raise _reject(400, "4004201", "Invalid Field Format {amount.value}")
        partner_reference_no = self._optional_str("42", body, "partnerReferenceNo")
        session_id = self._new_session_id()
        self._sessions_issued.add(session_id)
        bank_code = fields["additionalInfo.beneficiaryBankCode"]
        bank_name = _BANK_NAMES.get(bank_code, f"Bank {bank_code}")
        currency = fields["amount.currency"]
        return _Answer(
            200,
            {
                "responseCode": 2004200,  # a JSON number, as in DOKU's sample
                "responseMessage": "Successful",
                "referenceNo": session_id,
                "partnerReferenceNo": partner_reference_no,
                "beneficiaryAccountNumber": fields["beneficiaryAccountNumber"],
                "beneficiaryAccountName": fields["additionalInfo.beneficiaryAccountName"],
                "beneficiaryBankCode": bank_code,
                "beneficiaryBankShortName": bank_name,
                "beneficiaryBankName": bank_name,
                "amount": {"value": value, "currency": currency},
                "sessionId": session_id,
                "additionalInfo": {
                    "senderCountryCode": fields["additionalInfo.senderCountryCode"],
                    "forexRate": "1.00",
                    "forexOriginCurrency": currency,
                    "feeAmount": "4500.00",
                    "feeCurrency": "IDR",
                    "beneficiaryAmount": value,
                    "referenceNumber": str(uuid.uuid4()),
                },
            },
        )

    def _new_session_id(self) -> str:
        while True:
            session_id = "I" + "".join(str(secrets.randbelow(10)) for _ in range(16))
            if session_id not in self._sessions_issued:
                return session_id

    def _balance_inquiry(self, body: dict[str, Any]) -> _Answer:
        account_no = self._require("11", body, ("accountNo",))["accountNo"]
        if account_no != self.agent_key:
            raise _reject(404, "4041111", "Invalid Account")
        payload: dict[str, Any] = {
            "responseCode": "2001100",
            "responseMessage": "Successful",
        }
        partner_reference_no = self._optional_str("11", body, "partnerReferenceNo")
        if partner_reference_no:
            payload["partnerReferenceNo"] = partner_reference_no
        payload.update(
            {
                "accountNo": self.agent_key,
                "name": "Simulator Indo Agent",
                "accountInfos": [  # the sandbox's shape: an array, correctly spelled
                    {
                        "holdAmount": {"value": "0.00", "currency": "IDR"},
                        "availableBalance": {"value": f"{self.balance:.2f}", "currency": "IDR"},
                    }
                ],
                "additionalInfo": {"creditAlertLimit": {"value": "65000.00", "currency": "IDR"}},
            }
        )
        return _Answer(200, payload)

    def _transfer_bank(self, body: dict[str, Any], external_id: str) -> _Answer:
        fields = self._require(
            "43",
            body,
            (
                "partnerReferenceNo",
                "customerNumber",
                "beneficiaryAccountNumber",
                "beneficiaryBankCode",
                "amount.value",
                "amount.currency",
            ),
        )
        value = fields["amount.value"]
        if _AMOUNT_RE.fullmatch(value) is None:
            raise _reject(400, "4004301", "Invalid Field Format {amount.value}")
        session_id = self._optional_str("43", body, "sessionId")
        if session_id and session_id in self._sessions_used:
            raise _reject(409, "4094302", "Transaction already processed")
        reference = fields["partnerReferenceNo"]
        if reference in self.transfers:
            raise _reject(409, "4094301", "Duplicate partnerReferenceNo")
        amount = Decimal(value)
        if amount > self.balance:
            raise _reject(403, "4034314", "Insufficient Funds")

        # Commit.
        self.balance -= amount
        account = fields["beneficiaryAccountNumber"]
        reference_no = f"DK{self._next_reference:08d}"
        self._next_reference += 1
        self.transfers[reference] = TransferRecord(
            partner_reference_no=reference,
            external_id=external_id,
            reference_no=reference_no,
            amount=value,
            beneficiary_account_number=account,
            beneficiary_bank_code=fields["beneficiaryBankCode"],
            status="03" if "12345" in account else "00",
            session_id=session_id,
        )
        if session_id:
            self._sessions_used.add(session_id)
        self._creations[reference] = self._creations.get(reference, 0) + 1
        return _Answer(
            200,
            {
                "responseCode": "2004300",
                "responseMessage": "Successful",
                "referenceNo": reference_no,
                "partnerReferenceNo": reference,
                "transactionDate": _TRANSFER_DATE,
                "referenceNumber": str(uuid.uuid4()),
                "additionalInfo": {"sessionId": session_id, "amount": value},
            },
        )

    def _check_status(self, body: dict[str, Any]) -> _Answer:
        fields = self._require("53", body, ("originalPartnerReferenceNo", "serviceCode"))
        reference = fields["originalPartnerReferenceNo"]
        record = self.transfers.get(reference)
        if record is None:
            return _Answer(
                200,
                {
                    "responseCode": "2005300",
                    "responseMessage": "Successful",
                    "originalPartnerReferenceNo": reference,
                    "serviceCode": 43,
                    "latestTransactionStatus": "07",
                    "transactionStatusDesc": "Transaction not found",
                },
            )
        original_message, description = _STATUS_TEXT.get(
            record.status, ("Transfer", "Transaction status " + record.status)
        )
        return _Answer(
            200,
            {
                "responseCode": "2005300",
                "responseMessage": "Successful",
                "originalReferenceNo": record.reference_no,
                "originalPartnerReferenceNo": record.partner_reference_no,
                "serviceCode": 43,  # a JSON number (quirk)
                "latestTransactionStatus": record.status,
                "amount": {"value": record.amount, "currency": "IDR"},
                "transactionDate": _STATUS_DATE,
                "originalResponseCode": 0,  # a JSON number (quirk)
                "originalResponseMessage": original_message,
                "transactionStatusDesc": description,
                "sessionId": record.session_id,
                "additionalInfo": {"beneficiaryAmount": record.amount},
            },
        )


def _answer(status: int, code: str, message: str) -> _Answer:
    return _Answer(status, {"responseCode": code, "responseMessage": message})
