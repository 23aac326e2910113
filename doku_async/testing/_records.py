"""What the simulator's parts share: its records, its magic values and the vocabulary of answers.

It owns the public records (:class:`SimulatorCredentials`, :class:`RecordedRequest`,
:class:`SimulatedTransfer`, :class:`DeliveredNotification`), the sandbox magic values and
:data:`ANSWER_SHAPES`, the clock every part reads, and the answers a handler raises from
anywhere (:class:`Reply`, :class:`Drop`) with the helpers that build the common ones.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .._signing import format_timestamp

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "ANSWER_SHAPES",
    "FAILING_BANK",
    "REFUND_ACCOUNT",
    "RENAMED_ACCOUNT_NAME",
    "RENAMED_ACCOUNT_OTHER_NAME",
    "RENAMED_ACCOUNT_SUFFIX",
    "TWO",
    "UNPAID_MARKER",
    "WIB",
    "ApplyFault",
    "Clock",
    "DeliveredNotification",
    "Drop",
    "Handler",
    "RecordedRequest",
    "Reply",
    "Route",
    "SimulatedTransfer",
    "SimulatorCredentials",
    "json_object",
    "nonsnap_error",
    "snap_error",
]

ANSWER_SHAPES = ("docs", "sandbox", "mixed")
"""The answer shapes :class:`DokuSimulator` can speak (its ``shapes`` setting)."""

WIB = timezone(timedelta(hours=7))
TWO = Decimal("0.01")
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


class Reply(Exception):
    """An answer, raised from anywhere in a handler."""

    def __init__(self, status: int, payload: dict[str, Any], code: str = "") -> None:
        super().__init__(code or str(status))
        self.status = status
        self.payload = payload
        self.code = code or str(payload.get("responseCode", ""))
        self.headers: dict[str, str] = {}
        self.body: bytes | None = None  # the exact bytes, once signed


class Drop(Exception):
    """Close the connection without answering."""


Handler: TypeAlias = "Callable[[web.Request, bytes], Awaitable[Reply]]"
"""An operation's handler: the request and its raw body in, the answer out."""
Route: TypeAlias = "tuple[str, str, Handler]"
"""Path, operation name and handler of one endpoint."""
ApplyFault: TypeAlias = "Callable[[str, str, Callable[[], Reply]], Awaitable[Reply]]"
"""Runs an operation's commit under its next injected fault (operation, service code, commit)."""


def snap_error(status: int, service: str, case: str, message: str) -> Reply:
    """A SNAP error answer, ``responseCode`` ``{status}{service}{case}``."""
    code = f"{status}{service}{case}"
    return Reply(status, {"responseCode": code, "responseMessage": message}, code)


def nonsnap_error(
    status: int, code: str, message: str, *, data: dict[str, Any] | None = None
) -> Reply:
    """A Non-SNAP error answer in DOKU's ``status``/``error``(/``errors``) shape."""
    payload: dict[str, Any] = {
        "status": "FAILED",
        "message": message,
        "error": {"code": code, "message": message},
    }
    if status == 400:
        payload["errors"] = [{"code": code, "message": message}]
    if data is not None:
        payload["data"] = data
    return Reply(status, payload, str(status))


def json_object(raw: bytes, service: str, *, nonsnap: bool = False) -> dict[str, Any]:
    """The body as a JSON object (numbers with a fraction as ``Decimal``), or the family's 400."""
    try:
        body = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        if nonsnap:
            raise nonsnap_error(400, "invalid_body", "body must be a JSON object")
        raise snap_error(400, service, "00", "Bad Request. Invalid JSON")
    return body


@dataclass(slots=True)
class Clock:
    """The simulator's clock: wall time shifted by ``skew``; accepts requests ``max_skew`` off."""

    max_skew: float
    skew: float = 0.0

    def now(self) -> float:
        """Seconds since the epoch, as the simulator sees them."""
        return time.time() + self.skew

    def iso_now(self) -> str:
        """:meth:`now` as DOKU's UTC timestamp text."""
        return format_timestamp("utc", self.now())

    def check(self, value: str, service: str, *, require_utc: bool = False) -> None:
        """Raise the SNAP answer for a malformed or out-of-range request timestamp."""
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise snap_error(400, service, "01", "Invalid Field Format X-TIMESTAMP") from None
        if when.tzinfo is None or (require_utc and not value.endswith("Z")):
            raise snap_error(400, service, "01", "Invalid Field Format timestamp")
        if abs(when.timestamp() - self.now()) > self.max_skew:
            raise snap_error(401, service, "00", "Unauthorized. Timestamp out of range")
