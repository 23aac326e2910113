"""``DokuSimulator``: a stateful local DOKU on a loopback port.

It verifies every signature with the SDK's own :mod:`doku_async._signing` (so it never drifts
from the client), answers in DOKU's shapes and codes, keeps a ledger, replays idempotent
requests as DOKU does, sends signed Kirim DOKU notifications for the sandbox magic values, and
injects faults on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import _constants as C
from .. import _serde
from .._banks import BankCodes
from .._client import DokuClient
from .._names import names_match
from .._signing import (
    HmacKey,
    body_sha256_hex,
    format_timestamp,
    load_public_key,
    non_snap_signature,
    verify_non_snap_signature,
    verify_snap_signature,
    verify_token_signature,
)
from ..webhooks import sign_kirim_notification
from ._faults import Fault, FaultKind, FaultPlan

ANSWER_SHAPES = ("docs", "sandbox", "mixed")
"""The answer shapes :class:`DokuSimulator` can speak (its ``shapes`` setting)."""

__all__ = [
    "ANSWER_SHAPES",
    "DeliveredNotification",
    "DokuSimulator",
    "RecordedRequest",
    "SimulatedTransfer",
    "SimulatorCredentials",
]

log = logging.getLogger("doku_async.testing")

_WIB = timezone(timedelta(hours=7))
_TWO = Decimal("0.01")
REFUND_ACCOUNT = "7746555134"
UNPAID_MARKER = "12345"
FAILING_BANK = "002"
RENAMED_ACCOUNT_SUFFIX = "99999"
"""Account numbers ending in this have a registered name unlike the one sent (see below)."""
RENAMED_ACCOUNT_NAME = "BUDI SANTOSO"
"""The name the bank has for a :data:`RENAMED_ACCOUNT_SUFFIX` account ..."""
RENAMED_ACCOUNT_OTHER_NAME = "SITI AMINAH"
"""... or this one, when the name sent matches ``BUDI SANTOSO``."""


@dataclass(frozen=True, slots=True)
class SimulatorCredentials:
    """The merchant credentials the simulator accepts. Its repr hides the secrets."""

    client_id: str
    client_secret: str
    private_key_pem: bytes
    public_key_pem: bytes
    agent_key: str
    encryption_key: str

    @classmethod
    def generate(cls) -> SimulatorCredentials:
        """Fresh credentials: a 2048-bit RSA key pair, a random secret and encryption key."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(
            client_id=f"BRN-0001-{secrets.randbelow(10**13):013d}",
            client_secret="SK-" + secrets.token_urlsafe(24),
            private_key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            public_key_pem=key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            agent_key=f"A{secrets.randbelow(10**5):05d}",
            encryption_key=secrets.token_hex(8),
        )

    def __repr__(self) -> str:
        return f"SimulatorCredentials(client_id={self.client_id!r}, agent_key={self.agent_key!r})"


@dataclass(slots=True)
class RecordedRequest:
    """One request the simulator received, and what it answered (status 0: dropped)."""

    operation: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response_code: str = ""


@dataclass(slots=True)
class SimulatedTransfer:
    """A Kirim DOKU transfer in the simulator's ledger."""

    partner_reference_no: str
    external_id: str
    reference_no: str
    amount: Decimal
    beneficiary_account_number: str
    beneficiary_bank_code: str
    session_id: str
    status: str  # latestTransactionStatus
    created_at: float


@dataclass(slots=True)
class DeliveredNotification:
    """A notification the simulator sent (or tried to send)."""

    kind: str
    url: str
    body: dict[str, Any]
    attempts: int = 0
    acknowledged: bool = False
    responses: list[int] = field(default_factory=list)


class _Reply(Exception):
    """An answer, raised from anywhere in a handler."""

    def __init__(self, status: int, payload: dict[str, Any], code: str = "") -> None:
        super().__init__(code or str(status))
        self.status = status
        self.payload = payload
        self.code = code or str(payload.get("responseCode", ""))
        self.headers: dict[str, str] = {}
        self.body: bytes | None = None  # the exact bytes, once signed


def _snap_error(status: int, service: str, case: str, message: str) -> _Reply:
    code = f"{status}{service}{case}"
    return _Reply(status, {"responseCode": code, "responseMessage": message}, code)


class _Drop(Exception):
    """Close the connection without answering."""


@dataclass(slots=True)
class _NonSnapStored:
    body_hash: str
    status: int
    payload: bytes


_SNAP_OPS: dict[str, tuple[str, str]] = {
    C.ACCOUNT_INQUIRY_SUFFIX: ("account_inquiry", C.SERVICE_ACCOUNT_INQUIRY),
    C.BALANCE_INQUIRY_SUFFIX: ("balance_inquiry", C.SERVICE_BALANCE_INQUIRY),
    C.TRANSFER_BANK_SUFFIX: ("transfer_bank", C.SERVICE_TRANSFER_BANK),
    C.CHECK_STATUS_SUFFIX: ("check_status", C.SERVICE_CHECK_STATUS),
}


class DokuSimulator:
    """A local DOKU for tests, demos and benchmarks.

    Use ``async with DokuSimulator() as sim:`` and point a client at it with
    ``sim.client()`` (or ``DokuClient(**sim.client_kwargs())``).

    Args:
        credentials: the merchant credentials to accept; generated when omitted.
        host: interface to listen on (loopback).
        port: port to listen on; 0 picks a free ephemeral port.
        token_ttl: lifetime of issued B2B tokens, in seconds.
        balance: the agent's starting Kirim DOKU balance.
        sub_account_balance: each sub-account's starting balance (Transfers).
        unpaid_url: where Unpaid notifications go (none sent when ``None``).
        refund_url: where Refund notifications go (none sent when ``None``).
        notification_delay: seconds from a magic-value transfer to its notification.
        retry_schedule: seconds between delivery attempts when not acknowledged (DOKU: 30 min,
            6 h, 12 h; shrink for tests). Its length is the number of retries.
        max_clock_skew: accepted difference between a request timestamp and the simulator's
            clock, in seconds.
        sign_responses: sign Non-SNAP answers.
        payout_link_scheme: ``"sha256"`` or ``"sha512"`` for Payout Link signatures.
        shapes: which of DOKU's known answer shapes to speak (see :data:`ANSWER_SHAPES`):
            ``"docs"`` (the default) as DOKU's Kirim DOKU page shows them: ``responseCode`` a
            JSON number, ``accountInfos`` an object with the misspelled ``avaliableBalance``;
            ``"sandbox"`` as the live sandbox answers: codes as text, ``accountInfos`` an array
            with ``availableBalance``; ``"mixed"`` alternates between the two, answer by answer.
            In every variant the token answer's ``additionalInfo`` is ``""``, check status
            sends ``serviceCode`` ``43`` and ``originalResponseCode`` ``0`` as numbers and a
            malformed ``transactionDate``, and a transfer's ``additionalInfo.amount`` is text.
        bank_codes: the bank codes it accepts, :meth:`BankCodes.default` when omitted (the
            table the client checks). An account inquiry or transfer to any other code gets
            DOKU's HTTP 400 ``400{service}01`` "Invalid Field Format beneficiaryBankCode".
            ``sim.client()`` passes a customised table on to the client.
        registered_names: account number to the name its bank has registered, answered as
            the account inquiry's ``beneficiaryAccountName`` whatever name was sent (give it in
            DOKU's style: uppercase, possibly cut short). Other accounts answer the name that
            was sent, uppercased.

    Magic values (as in DOKU's sandbox, plus one of its own): a transfer to an account number
    containing ``12345`` stays UNPAID (``03``) and later turns FAILED (bank ``002``) or SUCCESS
    (any other bank), with an Unpaid notification; account ``7746555134`` is paid and then
    refunded, with a Refund notification. An account number ending in ``99999``
    (:data:`RENAMED_ACCOUNT_SUFFIX`) is registered to someone else: its account inquiry answers
    ``beneficiaryAccountName`` ``"BUDI SANTOSO"``, or ``"SITI AMINAH"`` when the name sent
    matches ``BUDI SANTOSO`` (:func:`~doku_async.names_match`), so a name check always has a
    mismatch to find (``registered_names`` wins over it).
    """

    def __init__(
        self,
        *,
        credentials: SimulatorCredentials | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: float = C.DEFAULT_TOKEN_LIFETIME,
        balance: Decimal | int | str = Decimal("1000000000.00"),
        sub_account_balance: int = 1_000_000_000_000,
        unpaid_url: str | None = None,
        refund_url: str | None = None,
        notification_delay: float = 0.01,
        retry_schedule: tuple[float, ...] = (0.05, 0.1, 0.2),
        max_clock_skew: float = 300.0,
        sign_responses: bool = True,
        payout_link_scheme: str = "sha256",
        shapes: str = "docs",
        bank_codes: BankCodes | None = None,
        registered_names: Mapping[str, str] | None = None,
    ) -> None:
        if shapes not in ANSWER_SHAPES:
            raise ValueError(f"shapes must be one of {', '.join(ANSWER_SHAPES)}, not {shapes!r}")
        self.shapes = shapes
        self._shape_turn = 0
        self.credentials = credentials or SimulatorCredentials.generate()
        self.host = host
        self.port = port
        self.token_ttl = token_ttl
        self.unpaid_url = unpaid_url
        self.refund_url = refund_url
        self.notification_delay = notification_delay
        self.retry_schedule = retry_schedule
        self.max_clock_skew = max_clock_skew
        self.sign_responses = sign_responses
        self.bank_codes = BankCodes.default() if bank_codes is None else bank_codes
        self.registered_names: dict[str, str] = dict(registered_names or {})
        creds = self.credentials
        self._public_key = load_public_key(creds.public_key_pem)
        self._snap_key = HmacKey(creds.client_secret, "sha512")
        self._sha256 = HmacKey(creds.client_secret, "sha256")
        self._link_key = (
            self._sha256
            if payout_link_scheme == "sha256"
            else HmacKey(creds.client_secret, "sha512")
        )
        self.faults = FaultPlan()
        self.requests: list[RecordedRequest] = []
        self.balances: dict[str, Decimal] = {creds.agent_key: Decimal(balance).quantize(_TWO)}
        self.sub_account_balance = sub_account_balance
        self.sub_accounts: dict[str, int] = {}
        self.transfers: dict[str, SimulatedTransfer] = {}
        self.commits: dict[str, int] = {}
        self.payout_links: dict[str, dict[str, Any]] = {}
        self.sub_account_transfers: dict[str, dict[str, Any]] = {}
        self.rdl_disbursements: dict[str, dict[str, Any]] = {}
        self.notifications: list[DeliveredNotification] = []
        self.token_requests = 0
        self._tokens: dict[str, float] = {}
        self._external_ids: set[tuple[str, str]] = set()
        self._sessions: dict[str, bool] = {}  # inquiry sessionId -> used by a transfer
        self._nonsnap_replays: dict[str, _NonSnapStored] = {}
        self._skew = 0.0
        self._seq = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._acked = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.app = self._build_app()

    def __repr__(self) -> str:
        return f"DokuSimulator(base_url={self.base_url!r})"

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> DokuSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0: an ephemeral one)."""
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])

    async def close(self) -> None:
        """Stop deliveries and the server."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running simulator."""
        return f"http://{self.host}:{self.port}"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~doku_async.DokuClient` pointing here."""
        creds = self.credentials
        kwargs: dict[str, Any] = {
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
            "private_key": creds.private_key_pem,
            "base_url": self.base_url,
        }
        if self.bank_codes != BankCodes.default():
            kwargs["bank_codes"] = self.bank_codes
        return kwargs

    def client(self, **overrides: Any) -> DokuClient:
        """A :class:`~doku_async.DokuClient` for this simulator (``overrides`` win)."""
        return DokuClient(**{**self.client_kwargs(), **overrides})

    # --- control and queries -------------------------------------------------------------

    def inject(
        self,
        operation: str,
        kind: FaultKind,
        *,
        times: int = 1,
        status: int = 500,
        response_code: str = "",
        retry_after: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``times`` calls of ``operation`` suffer a fault (see :class:`Fault`)."""
        self.faults.add(
            operation,
            Fault(
                kind,
                status=status,
                response_code=response_code,
                retry_after=retry_after,
                delay=delay,
            ),
            times,
        )

    def skew_clock(self, seconds: float) -> None:
        """Shift the simulator's clock (requests then look that far off)."""
        self._skew = seconds

    def expire_tokens(self) -> None:
        """Expire every issued token: the next SNAP call gets ``401xx01``."""
        for token in self._tokens:
            self._tokens[token] = 0.0

    def requests_for(self, operation: str) -> list[RecordedRequest]:
        """Recorded requests of one operation."""
        return [r for r in self.requests if r.operation == operation]

    def transfer_count(self, partner_reference_no: str) -> int:
        """How many times a transfer with this reference was committed (never more than 1)."""
        return self.commits.get(partner_reference_no, 0)

    def balance(self, agent_key: str | None = None) -> Decimal:
        """The agent's current balance."""
        return self.balances[agent_key or self.credentials.agent_key]

    async def wait_for_notifications(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` notifications were acknowledged (or raise ``TimeoutError``)."""
        async with asyncio.timeout(timeout):
            while sum(1 for n in self.notifications if n.acknowledged) < count:
                self._acked.clear()
                await self._acked.wait()

    async def drain(self) -> None:
        """Wait for deliveries and delayed commits still running."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def set_payout_link_status(self, reference_id: str, status: str) -> None:
        """Move a payout link to ``status`` (any text, like DOKU may send)."""
        link = self.payout_links[reference_id]
        link["status"] = status
        link["modified_time"] = self._iso_now()

    def claim_payout_link(self, reference_id: str, *, succeed: bool = True) -> None:
        """Simulate the recipient opening the link and submitting bank details: the link goes
        through EMAIL_LINK_OPENED and CONFIRMED to COMPLETED (or FAILED)."""
        link = self.payout_links[reference_id]
        if link["status"] in ("COMPLETED", "FAILED", "EXPIRED"):
            raise ValueError(f"payout link {reference_id} is already {link['status']}")
        link["history"].extend(["EMAIL_LINK_OPENED", "CONFIRMED"])
        self.set_payout_link_status(reference_id, "COMPLETED" if succeed else "FAILED")
        link["history"].append(link["status"])

    # --- plumbing ------------------------------------------------------------------------

    def _now(self) -> float:
        return time.time() + self._skew

    def _iso_now(self) -> str:
        return format_timestamp("utc", self._now())

    def _docs_shape(self) -> bool:
        """Whether this answer takes the docs' shape (``False``: the live sandbox's)."""
        if self.shapes == "mixed":
            self._shape_turn += 1
            return self._shape_turn % 2 == 1
        return self.shapes == "docs"

    def _success_code(self, service: str, docs: bool) -> int | str:
        """``200xx00``: a JSON number in DOKU's Kirim examples, text on the sandbox."""
        code = f"200{service}00"
        return int(code) if docs else code

    def _next(self, prefix: str, width: int = 10) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:0{width}d}"

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post(C.TOKEN_PATH, self._route("token", self._token))
        for family in C.KIRIM_FAMILIES:
            for suffix, (op, service) in _SNAP_OPS.items():
                app.router.add_post(
                    family + suffix, self._route(op, self._snap_handler(op, service))
                )
        for path, op, handler in (
            (C.PAYOUT_LINK_INITIATE_PATH, "payout_link_initiate", self._payout_initiate),
            (C.PAYOUT_LINK_STATUS_PATH, "payout_link_status", self._payout_status),
            (C.SAC_TRANSFERS_PATH, "transfers", self._sub_account_transfer),
            (C.RDL_DISBURSEMENTS_PATH, "rdl", self._rdl),
        ):
            app.router.add_post(path, self._route(op, self._non_snap_handler(op, handler)))
        return app

    def _route(
        self,
        op: str,
        handler: Callable[[web.Request, bytes, RecordedRequest], Awaitable[_Reply]],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            record = RecordedRequest(op, request.path, dict(request.headers), raw)
            self.requests.append(record)
            try:
                reply = await handler(request, raw, record)
            except _Reply as exc:
                reply = exc
            except _Drop:
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=204)
            record.status = reply.status
            record.response_code = reply.code
            return web.Response(
                status=reply.status,
                body=reply.body if reply.body is not None else _serde.encode_numbers(reply.payload),
                content_type="application/json",
                headers=reply.headers,
            )

        return route

    async def _apply_fault(self, op: str, service: str, commit: Callable[[], _Reply]) -> _Reply:
        """Run ``commit`` under the next queued fault of ``op``, if any."""
        fault = self.faults.take(op)
        if fault is None:
            return commit()
        if fault.kind == "hang_after_commit":
            reply = commit()
            await asyncio.sleep(fault.delay)
            return reply
        if fault.delay:
            if fault.kind == "latency":
                # Commit after the delay even if the client left, like a slow real server;
                # tracked, so drain() and close() wait for it.
                delayed: asyncio.Task[_Reply] = asyncio.ensure_future(
                    self._delayed(fault.delay, commit)
                )
                self._tasks.add(delayed)
                delayed.add_done_callback(self._tasks.discard)
                return await asyncio.shield(delayed)
            await asyncio.sleep(fault.delay)
        if fault.kind == "drop_before_commit":
            raise _Drop
        if fault.kind == "drop_after_commit":
            commit()
            raise _Drop
        if fault.kind == "error_after_commit":
            commit()
        elif fault.kind == "latency":
            return commit()
        code = fault.response_code or f"{fault.status}{service}00"
        reply = _Reply(
            fault.status, {"responseCode": code, "responseMessage": "Injected fault"}, code
        )
        if fault.retry_after is not None:
            reply.headers["Retry-After"] = fault.retry_after
        return reply

    async def _delayed(self, delay: float, commit: Callable[[], _Reply]) -> _Reply:
        await asyncio.sleep(delay)
        return commit()

    def _check_timestamp(self, value: str, service: str, *, require_utc: bool = False) -> None:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise _snap_error(400, service, "01", "Invalid Field Format X-TIMESTAMP") from None
        if when.tzinfo is None or (require_utc and not value.endswith("Z")):
            raise _snap_error(400, service, "01", "Invalid Field Format timestamp")
        if abs(when.timestamp() - self._now()) > self.max_clock_skew:
            raise _snap_error(401, service, "00", "Unauthorized. Timestamp out of range")

    # --- SNAP: token -------------------------------------------------------------------------

    async def _token(self, request: web.Request, raw: bytes, record: RecordedRequest) -> _Reply:
        service = C.SERVICE_TOKEN
        headers = request.headers
        client_id = headers.get("X-CLIENT-KEY", "")
        ts = headers.get("X-TIMESTAMP", "")
        signature = headers.get("X-SIGNATURE", "")
        if not client_id or not ts or not signature:
            raise _snap_error(400, service, "02", "Invalid Mandatory Field")
        if client_id != self.credentials.client_id:
            raise _snap_error(401, service, "00", "Unauthorized. Unknown client")
        self._check_timestamp(ts, service)
        if not verify_token_signature(self._public_key, client_id, ts, signature):
            raise _snap_error(401, service, "00", "Unauthorized. Signature")
        body = _json_object(raw, service)
        if body.get("grantType") != "client_credentials":
            raise _snap_error(400, service, "02", "Invalid Mandatory Field grantType")

        def commit() -> _Reply:
            token = "eyJ" + secrets.token_urlsafe(32)
            self._tokens[token] = time.monotonic() + self.token_ttl
            self.token_requests += 1
            return _Reply(
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

        return await self._apply_fault("token", service, commit)

    # --- SNAP: Kirim DOKU ----------------------------------------------------------------

    def _snap_handler(
        self, op: str, service: str
    ) -> Callable[[web.Request, bytes, RecordedRequest], Awaitable[_Reply]]:
        async def handle(request: web.Request, raw: bytes, record: RecordedRequest) -> _Reply:
            external_id = self._verify_snap(request, raw, service)
            body = _json_object(raw, service)
            operation = getattr(self, f"_{op}")

            def commit() -> _Reply:
                day = datetime.fromtimestamp(self._now(), _WIB).date().isoformat()
                if (day, external_id) in self._external_ids:
                    raise _snap_error(409, service, "00", "Conflict. X-EXTERNAL-ID already used")
                self._external_ids.add((day, external_id))
                reply: _Reply = operation(body, external_id, service)
                return reply

            try:
                return await self._apply_fault(op, service, commit)
            except _Reply as reply:
                return reply

        return handle

    def _verify_snap(self, request: web.Request, raw: bytes, service: str) -> str:
        headers = request.headers
        auth = headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        expiry = self._tokens.get(token)
        if expiry is None:
            raise _snap_error(401, service, "03", "Unauthorized. Token not found")
        if expiry <= time.monotonic():
            raise _snap_error(401, service, "01", "Invalid Token (B2B)")
        for name in ("X-TIMESTAMP", "X-SIGNATURE", "X-EXTERNAL-ID", "CHANNEL-ID", "X-PARTNER-ID"):
            if not headers.get(name):
                raise _snap_error(400, service, "02", f"Invalid Mandatory Field {name}")
        if headers["X-PARTNER-ID"] != self.credentials.client_id:
            raise _snap_error(401, service, "00", "Unauthorized. Unknown partner")
        external_id = headers["X-EXTERNAL-ID"]
        if not (external_id.isascii() and external_id.isdigit() and len(external_id) <= 36):
            raise _snap_error(400, service, "01", "Invalid Field Format X-EXTERNAL-ID")
        ts = headers["X-TIMESTAMP"]
        self._check_timestamp(ts, service)
        if not verify_snap_signature(
            self._snap_key, request.method, request.path, token, raw, ts, headers["X-SIGNATURE"]
        ):
            raise _snap_error(401, service, "00", "Unauthorized. Signature")
        return external_id

    def _account_inquiry(self, body: dict[str, Any], external_id: str, service: str) -> _Reply:
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
                raise _snap_error(400, service, "02", f"Invalid Mandatory Field {name}")
        bank = info["beneficiaryBankCode"]
        bank_name = self._bank_name(bank, service)
        session_id = self._next("I", 16)
        self._sessions[session_id] = False
        value = _money(amount["value"], service)
        docs = self._docs_shape()
        extra: dict[str, Any] = (
            {
                "senderCountryCode": info["senderCountryCode"],
                "forexRate": "1.00",
                "forexOriginCurrency": "IDR",
                "feeAmount": "4500.00",
                "feeCurrency": "IDR",
                "beneficiaryAmount": f"{value}",
                "referenceNumber": str(uuid.uuid4()),
            }
            if docs
            else {"forex": {}, "fee": {}}
        )
        return _Reply(
            200,
            {
                "responseCode": self._success_code(service, docs),
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
                "additionalInfo": extra,
            },
        )

    def _bank_name(self, code: str, service: str) -> str:
        """The bank's name, or DOKU's invalid-field answer for a code it does not know."""
        name = self.bank_codes.name_of(code)
        if name is None:
            raise _snap_error(400, service, "01", "Invalid Field Format beneficiaryBankCode")
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

    def _balance_inquiry(self, body: dict[str, Any], external_id: str, service: str) -> _Reply:
        account = body.get("accountNo")
        if not isinstance(account, str) or not account:
            raise _snap_error(400, service, "02", "Invalid Mandatory Field accountNo")
        if account not in self.balances:
            raise _snap_error(404, service, "11", "Invalid Account")
        docs = self._docs_shape()
        available = {"value": f"{self.balances[account]}", "currency": "IDR"}
        hold = {"value": "0.00", "currency": "IDR"}
        return _Reply(
            200,
            {
                "responseCode": self._success_code(service, docs),
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

    def _transfer_bank(self, body: dict[str, Any], external_id: str, service: str) -> _Reply:
        amount = _require_obj(body, "amount", service)
        for name in (
            "partnerReferenceNo",
            "customerNumber",
            "beneficiaryAccountNumber",
            "beneficiaryBankCode",
        ):
            if not isinstance(body.get(name), str) or not body[name]:
                raise _snap_error(400, service, "02", f"Invalid Mandatory Field {name}")
        value_text = amount.get("value")
        if (
            not isinstance(value_text, str)
            or len(value_text.rpartition(".")[2]) != 2
            or "." not in value_text
        ):
            raise _snap_error(400, service, "01", "Invalid Field Format amount.value")
        value = _money(value_text, service)
        if value <= 0:
            raise _snap_error(400, service, "01", "Invalid Field Format amount.value")
        self._bank_name(body["beneficiaryBankCode"], service)
        reference = body["partnerReferenceNo"]
        session_id = body.get("sessionId") or ""
        if reference in self.transfers:
            raise _snap_error(409, service, "01", "Conflict. partnerReferenceNo already used")
        if session_id and self._sessions.get(session_id) is True:
            raise _snap_error(409, service, "02", "Transaction already processed")
        agent = self.credentials.agent_key
        if value > self.balances[agent]:
            raise _snap_error(403, service, "14", "Insufficient Funds")
        account = body["beneficiaryAccountNumber"]
        bank = body["beneficiaryBankCode"]
        self.balances[agent] -= value
        if session_id:
            self._sessions[session_id] = True
        unpaid = UNPAID_MARKER in account
        transfer = SimulatedTransfer(
            partner_reference_no=reference,
            external_id=external_id,
            reference_no=self._next("DK", 8),
            amount=value,
            beneficiary_account_number=account,
            beneficiary_bank_code=bank,
            session_id=session_id,
            status="03" if unpaid else "00",
            created_at=self._now(),
        )
        self.transfers[reference] = transfer
        self.commits[reference] = self.commits.get(reference, 0) + 1
        if unpaid:
            self._spawn(self._settle_unpaid(transfer, failed=bank == FAILING_BANK))
        elif account == REFUND_ACCOUNT:
            self._spawn(self._refund(transfer))
        return _Reply(
            200,
            {
                "responseCode": self._success_code(service, self._docs_shape()),
                "responseMessage": "Successful",
                "referenceNo": transfer.reference_no,
                "partnerReferenceNo": reference,
                "transactionDate": datetime.fromtimestamp(transfer.created_at, _WIB).isoformat(
                    timespec="seconds"
                ),
                "referenceNumber": str(uuid.uuid4()),
                "additionalInfo": {"sessionId": session_id, "amount": f"{value}"},
            },
        )

    def _check_status(self, body: dict[str, Any], external_id: str, service: str) -> _Reply:
        reference = body.get("originalPartnerReferenceNo")
        if not isinstance(reference, str) or not reference:
            raise _snap_error(
                400, service, "02", "Invalid Mandatory Field originalPartnerReferenceNo"
            )
        if not isinstance(body.get("serviceCode"), str):
            raise _snap_error(400, service, "02", "Invalid Mandatory Field serviceCode")
        transfer = self.transfers.get(reference)
        if transfer is None:
            return _Reply(
                200,
                {
                    "responseCode": self._success_code(service, self._docs_shape()),
                    "responseMessage": "Successful",
                    "originalPartnerReferenceNo": reference,
                    "serviceCode": 43,
                    "latestTransactionStatus": "07",
                    "transactionStatusDesc": "Transaction not found",
                },
            )
        descriptions = {
            "00": "Transaction is successfully processed",
            "03": "Transaction is pending (unpaid)",
            "04": "Transaction is refunded",
            "06": "Transaction is failed",
        }
        return _Reply(
            200,
            {
                "responseCode": self._success_code(service, self._docs_shape()),
                "responseMessage": "Successful",
                "originalReferenceNo": transfer.reference_no,
                "originalPartnerReferenceNo": reference,
                "serviceCode": 43,  # a number, as DOKU's sample sends
                "latestTransactionStatus": transfer.status,
                "amount": {"value": f"{transfer.amount}", "currency": "IDR"},
                "transactionDate": datetime.fromtimestamp(transfer.created_at, _WIB).strftime(
                    "%Y-%m-%dT%H:%M:%S. %f+07:00"  # DOKU's malformed date, on purpose
                )[:-9]
                + "+07:00",
                "originalResponseCode": 0,
                "originalResponseMessage": "Transfer Approve",
                "transactionStatusDesc": descriptions.get(transfer.status, "Unknown"),
                "sessionId": transfer.session_id,
                "additionalInfo": {"remark": "", "beneficiaryAmount": f"{transfer.amount}"},
            },
        )

    # --- notifications -------------------------------------------------------------------

    async def _settle_unpaid(self, transfer: SimulatedTransfer, *, failed: bool) -> None:
        await asyncio.sleep(self.notification_delay)
        transfer.status = "06" if failed else "00"
        if failed:
            self.balances[self.credentials.agent_key] += transfer.amount
        body = {
            "sendTrxId": transfer.partner_reference_no,
            "transactionId": transfer.reference_no,
            "invoiceNumber": transfer.partner_reference_no,
            "transactionStatus": "35" if failed else "50",
            "activityCode": "200",
            "message": "Transaction is Failed" if failed else "Transaction is Success",
            "processDate": datetime.fromtimestamp(self._now(), _WIB).strftime(
                "%Y-%m-%d'T'%H:%M:%S"
            ),
            "createdTime": str(int(transfer.created_at * 1000)),
        }
        await self._deliver("unpaid", self.unpaid_url, body)

    async def _refund(self, transfer: SimulatedTransfer) -> None:
        await asyncio.sleep(self.notification_delay)
        transfer.status = "04"
        self.balances[self.credentials.agent_key] += transfer.amount
        body = {
            "transactionId": transfer.reference_no,
            "activityCode": "200",
            "message": "Transaction is Refunded",
            "processDate": datetime.fromtimestamp(self._now(), _WIB).strftime(
                "%Y-%m-%d'T'%H:%M:%S"
            ),
        }
        await self._deliver("refund", self.refund_url, body)

    async def _deliver(self, kind: str, url: str | None, body: dict[str, Any]) -> None:
        if url is None:
            return
        record = DeliveredNotification(kind, url, body)
        self.notifications.append(record)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        payload = json.dumps(body, separators=(",", ":")).encode()
        creds = self.credentials
        for wait in (0.0, *self.retry_schedule):
            if wait:
                await asyncio.sleep(wait)
            record.attempts += 1
            headers = sign_kirim_notification(
                agent_key=creds.agent_key, encryption_key=creds.encryption_key
            )
            try:
                async with self._session.post(
                    url, data=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=5)
                ) as resp:
                    record.responses.append(resp.status)
                    answer = await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                record.responses.append(0)
                continue
            if resp.status == 200 and _acknowledged(answer):
                record.acknowledged = True
                self._acked.set()
                return
        log.info("%s notification for %s was never acknowledged", kind, body["transactionId"])

    # --- Non-SNAP ------------------------------------------------------------------------

    def _non_snap_handler(
        self, op: str, handler: Callable[[dict[str, Any]], _Reply]
    ) -> Callable[[web.Request, bytes, RecordedRequest], Awaitable[_Reply]]:
        key = self._link_key if op.startswith("payout_link") else self._sha256
        money_moving = op in ("payout_link_initiate", "transfers", "rdl")

        async def handle(request: web.Request, raw: bytes, record: RecordedRequest) -> _Reply:
            request_id = request.headers.get("Request-Id", "")
            try:
                self._verify_non_snap(request, raw, key)
                body = _json_object(raw, "00", nonsnap=True)
                stored = self._nonsnap_replays.get(request_id) if money_moving else None
                if stored is not None:
                    if stored.body_hash != body_sha256_hex(raw):
                        raise _nonsnap_error(
                            409, "duplicate_request_id", "Request-Id reused with another body"
                        )
                    reply = _Reply(409, json.loads(stored.payload, parse_float=Decimal))
                else:

                    def commit() -> _Reply:
                        result = handler(body)
                        if money_moving:
                            self._nonsnap_replays[request_id] = _NonSnapStored(
                                body_sha256_hex(raw),
                                result.status,
                                _serde.encode_numbers(result.payload),
                            )
                        return result

                    reply = await self._apply_fault(op, "00", lambda: _catching(commit))
            except _Reply as exc:
                reply = exc
            self._sign_non_snap(reply, request, request_id, key)
            return reply

        return handle

    def _verify_non_snap(self, request: web.Request, raw: bytes, key: HmacKey) -> None:
        headers = request.headers
        for name in ("Client-Id", "Request-Id", "Request-Timestamp", "Signature"):
            if not headers.get(name):
                raise _nonsnap_error(400, "missing_header", f"{name} is required")
        if headers["Client-Id"] != self.credentials.client_id:
            raise _nonsnap_error(401, "invalid_client_id", "Unknown Client-Id")
        if len(headers["Request-Id"]) > C.REQUEST_ID_MAX:
            raise _nonsnap_error(400, "invalid_request_id", "Request-Id too long")
        try:
            self._check_timestamp(headers["Request-Timestamp"], "00", require_utc=True)
        except _Reply as exc:
            raise _nonsnap_error(
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
            raise _nonsnap_error(401, "invalid_signature", "Invalid Signature")

    def _sign_non_snap(
        self, reply: _Reply, request: web.Request, request_id: str, key: HmacKey
    ) -> None:
        if not self.sign_responses:
            return
        payload = _serde.encode_numbers(reply.payload)
        ts = self._iso_now()
        client_id = self.credentials.client_id
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

    def _payout_initiate(self, body: dict[str, Any]) -> _Reply:
        fields = _nonsnap_fields(
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
            raise _nonsnap_error(400, "invalid_amount", "amount must be a number with 2 decimals")
        reference = fields["reference_id"]
        if reference in self.payout_links:
            raise _nonsnap_error(409, "duplicate_reference", "reference_id already used")
        now = self._iso_now()
        link = {
            "reference_id": reference,
            "transaction_id": self._next("PL"),
            "status": "PENDING",
            "amount": amount,
            **{
                k: fields[k]
                for k in ("sender_name", "receiver_name", "receiver_phone_number", "receiver_email")
            },
            "created_time": now,
            "modified_time": now,
            "history": ["PENDING", "EMAIL_SENT"],
        }
        self.payout_links[reference] = link
        link["status"] = "EMAIL_SENT"
        return _Reply(
            200,
            {
                "status": "SUCCESS",
                "message": "Payout link created",
                "timestamp": now,
                "data": _public_link(link),
            },
        )

    def _payout_status(self, body: dict[str, Any]) -> _Reply:
        reference = _nonsnap_fields(body, {"transaction_id": 30})["transaction_id"]
        link = self.payout_links.get(reference)
        if link is None:
            raise _nonsnap_error(
                404, "not_found", "Transaction not found", data={"transaction_id": reference}
            )
        state = {
            "COMPLETED": "DONE",
            "FAILED": "DONE",
            "EXPIRED": "DONE",
            "CONFIRMED": "PROCES",
            "PENDING_PROCESS": "PROCES",
        }
        data = {**_public_link(link), "state": state.get(link["status"], "GENERATED")}
        return _Reply(
            200,
            {
                "status": "SUCCESS",
                "message": "Payout link status",
                "timestamp": self._iso_now(),
                "data": data,
            },
        )

    def _sub_account_transfer(self, body: dict[str, Any]) -> _Reply:
        transfer = body.get("transfer")
        if not isinstance(transfer, dict):
            raise _nonsnap_error(400, "invalid_body", "transfer is required")
        fields = _nonsnap_fields(transfer, {"origin": 40, "destination": 40, "invoice_number": 100})
        amount = transfer.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount < 10**12:
            raise _nonsnap_error(
                400, "invalid_amount", "transfer.amount must be a positive integer"
            )
        invoice = fields["invoice_number"]
        if invoice in self.sub_account_transfers:
            raise _nonsnap_error(409, "duplicate_reference", "invoice_number already used")
        origin = self.sub_accounts.setdefault(fields["origin"], self.sub_account_balance)
        if amount > origin:
            raise _nonsnap_error(400, "insufficient_balance", "insufficient balance")
        self.sub_accounts[fields["origin"]] = origin - amount
        self.sub_accounts[fields["destination"]] = (
            self.sub_accounts.setdefault(fields["destination"], self.sub_account_balance) + amount
        )
        record = {
            **fields,
            "amount": amount,
            "status": "SUCCESS",
            "created": datetime.fromtimestamp(self._now(), _WIB).isoformat(sep=" "),
        }
        self.sub_account_transfers[invoice] = record
        return _Reply(200, {"transfer": record})

    def _rdl(self, body: dict[str, Any]) -> _Reply:
        txn = body.get("transaction")
        source = body.get("source_account")
        dest = body.get("account_destination")
        if not (isinstance(txn, dict) and isinstance(source, dict) and isinstance(dest, dict)):
            raise _nonsnap_error(
                400,
                "invalid_body",
                "transaction, source_account and account_destination are required",
            )
        t = _nonsnap_fields(txn, {"id": 64, "description": 256})
        s = _nonsnap_fields(source, {"account_id": 100})
        d = _nonsnap_fields(
            dest, {"code": 50, "account_bank_number": 100, "account_bank_name": 50, "address": 50}
        )
        amount = txn.get("amount")
        if (
            not isinstance(amount, int)
            or isinstance(amount, bool)
            or not 10_000 <= amount <= 999_999_999_999
        ):
            raise _nonsnap_error(400, "invalid_amount", "transaction.amount out of range")
        if t["id"] in self.rdl_disbursements:
            raise _nonsnap_error(409, "duplicate_reference", "transaction.id already used")
        now = self._iso_now()
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
        self.rdl_disbursements[t["id"]] = record
        return _Reply(200, record)


# --- helpers ---------------------------------------------------------------------------------


def _json_object(raw: bytes, service: str, *, nonsnap: bool = False) -> dict[str, Any]:
    try:
        body = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        if nonsnap:
            raise _nonsnap_error(400, "invalid_body", "body must be a JSON object")
        raise _snap_error(400, service, "00", "Bad Request. Invalid JSON")
    return body


def _require_obj(body: dict[str, Any], name: str, service: str) -> dict[str, Any]:
    value = body.get(name)
    if not isinstance(value, dict):
        raise _snap_error(400, service, "02", f"Invalid Mandatory Field {name}")
    return value


def _money(text: str, service: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _snap_error(400, service, "01", "Invalid Field Format amount.value") from None
    if not value.is_finite():
        raise _snap_error(400, service, "01", "Invalid Field Format amount.value")
    return value.quantize(_TWO)


def _nonsnap_error(
    status: int, code: str, message: str, *, data: dict[str, Any] | None = None
) -> _Reply:
    payload: dict[str, Any] = {
        "status": "FAILED",
        "message": message,
        "error": {"code": code, "message": message},
    }
    if status == 400:
        payload["errors"] = [{"code": code, "message": message}]
    if data is not None:
        payload["data"] = data
    return _Reply(status, payload, str(status))


def _nonsnap_fields(body: dict[str, Any], limits: dict[str, int]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, limit in limits.items():
        value = body.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= limit:
            raise _nonsnap_error(400, "invalid_field", f"{name} must be 1-{limit} characters")
        out[name] = value
    return out


def _public_link(link: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in link.items() if k != "history"}


def _catching(commit: Callable[[], _Reply]) -> _Reply:
    try:
        return commit()
    except _Reply as reply:
        return reply


def _acknowledged(answer: bytes) -> bool:
    try:
        body = json.loads(answer)
    except ValueError:
        return False
    return isinstance(body, dict) and str(body.get("responseCode")) in ("00", "01")
