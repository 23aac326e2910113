"""The whole error tree of doku_async.

Every error the SDK raises derives from :class:`DokuError`::

    DokuError
    ├── ConfigurationError              bad client configuration (raised before any I/O)
    ├── RequestValidationError          bad call arguments; names the field; nothing was sent
    ├── DokuAPIError                    DOKU answered with a non-success response code
    │   ├── BadRequestError             400xx00-02: malformed or missing field
    │   ├── AuthenticationError         401xx: signature, key or client rejected
    │   │   └── TokenError              401xx01 / 401xx03 still failing after one refresh
    │   ├── BusinessRejectionError      403/404/405 and other definite business rejections
    │   │   ├── InsufficientFundsError  403xx14
    │   │   ├── InvalidAccountError     404xx11
    │   │   └── TransferFailedError     check status: failed or canceled (nothing paid)
    │   ├── DuplicateRequestError       409xx: X-EXTERNAL-ID / partnerReferenceNo / session reused
    │   ├── RateLimitError              429xx
    │   └── ServerError                 5xx and 504 answers
    ├── DokuTransportError              no usable answer reached us
    │   ├── DokuConnectionError         connect failed or the connection dropped
    │   └── DokuTimeoutError            an attempt or the operation deadline ran out
    ├── ClientClosedError               a call on a closed client: a usage error (nothing sent)
    ├── ResponseDecodeError             DOKU's answer could not be decoded
    ├── SignatureVerificationError      a signed answer or notification failed verification
    └── TransferOutcomeUnknownError     a transfer may or may not have happened; has references

Errors never carry secrets: no client secret, private key, token or signature appears in
their messages or attributes. :func:`error_for` is the one table from DOKU's answer to the
typed error.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BusinessRejectionError",
    "ClientClosedError",
    "ConfigurationError",
    "DokuAPIError",
    "DokuConnectionError",
    "DokuError",
    "DokuTimeoutError",
    "DokuTransportError",
    "DuplicateRequestError",
    "InsufficientFundsError",
    "InvalidAccountError",
    "RateLimitError",
    "RequestValidationError",
    "ResponseDecodeError",
    "ServerError",
    "SignatureVerificationError",
    "TokenError",
    "TransferFailedError",
    "TransferOutcomeUnknownError",
    "error_for",
    "split_code",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


class DokuError(Exception):
    """Root of every error raised by doku_async.

    ``references`` maps reference names (``"X-EXTERNAL-ID"``, ``"partnerReferenceNo"``,
    ``"Request-Id"``...) to the values the operation used, so a failure can be reconciled.
    """

    def __init__(self, message: str, *, references: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.references: Mapping[str, str] = MappingProxyType(dict(references or _EMPTY))

    def __str__(self) -> str:
        if not self.references:
            return self.message
        refs = ", ".join(f"{k}={v}" for k, v in self.references.items())
        return f"{self.message} [{refs}]"


class ConfigurationError(DokuError, ValueError):
    """A client, runner or webhook app was configured with missing or invalid settings."""


class RequestValidationError(DokuError, ValueError):
    """A call argument is out of range; ``field`` names it. Nothing was sent."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class DokuAPIError(DokuError):
    """DOKU answered, but not with success.

    Attributes:
        http_status: the HTTP status of the answer.
        response_code: DOKU's seven-digit ``responseCode`` (``""`` when the answer had none).
        service_code: the two service digits of ``response_code`` (e.g. ``"43"``).
        case_code: the two case digits of ``response_code`` (e.g. ``"14"``).
        response_message: DOKU's ``responseMessage``.
        raw_body: the answer's bytes, for logging and support tickets.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        response_code: str = "",
        response_message: str = "",
        raw_body: bytes = b"",
        references: Mapping[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message, references=references)
        self.http_status = http_status
        self.response_code = response_code
        self.service_code = response_code[3:5] if len(response_code) == 7 else ""
        self.case_code = response_code[5:7] if len(response_code) == 7 else ""
        self.response_message = response_message
        self.raw_body = raw_body
        self.details = details


class BadRequestError(DokuAPIError):
    """400xx: DOKU rejected the request's format or a mandatory field."""


class AuthenticationError(DokuAPIError):
    """401xx: DOKU rejected the signature, the client id or the key."""


class TokenError(AuthenticationError):
    """401xx01 / 401xx03: the access token was rejected even after one refresh."""


class BusinessRejectionError(DokuAPIError):
    """A definite business rejection (403, 404, 405...): nothing was paid."""


class InsufficientFundsError(BusinessRejectionError):
    """403xx14: the balance does not cover the transfer. Top up, then retry."""


class InvalidAccountError(BusinessRejectionError):
    """404xx11: the beneficiary account is invalid."""


class TransferFailedError(BusinessRejectionError):
    """Check status reports the transfer as failed, refunded or canceled.

    ``transaction_status`` holds DOKU's ``latestTransactionStatus`` (``"04"``, ``"05"``, ``"06"``).
    """

    def __init__(self, message: str, *, transaction_status: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.transaction_status = transaction_status


class DuplicateRequestError(DokuAPIError):
    """409xx: a reference was already used. Never resend with new references; check status."""


class RateLimitError(DokuAPIError):
    """429xx: too many requests. ``retry_after`` holds DOKU's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(DokuAPIError):
    """5xx: DOKU or a bank behind it failed or timed out."""


class DokuTransportError(DokuError):
    """No usable answer reached us.

    ``request_sent`` is ``True`` when the request may have reached DOKU (so a money-moving
    call may have taken effect) and ``False`` when it certainly did not.
    """

    def __init__(
        self,
        message: str,
        *,
        request_sent: bool,
        references: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, references=references)
        self.request_sent = request_sent

    def with_references(self, references: Mapping[str, str]) -> DokuTransportError:
        """The same error, carrying the operation's ``references``."""
        return type(self)(self.message, request_sent=self.request_sent, references=references)


class DokuConnectionError(DokuTransportError):
    """The connection could not be made, or dropped before an answer arrived."""


class DokuTimeoutError(DokuTransportError):
    """An attempt timed out, or the operation's total deadline ran out."""


class ClientClosedError(DokuError, RuntimeError):
    """A call on a client that is already closed: a usage error, not a network failure, so
    nothing was sent and nothing is retried (an ``except DokuTransportError`` retry loop does not
    catch it). Make calls inside ``async with DokuClient(...)``, or before ``aclose()``."""

    request_sent = False
    """Always ``False``: the call never reached the network."""

    def __init__(
        self,
        message: str = (
            "this DokuClient is closed: make calls inside 'async with DokuClient(...) as doku:' "
            "or before 'await doku.aclose()', or create a new client"
        ),
        *,
        references: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, references=references)


class ResponseDecodeError(DokuError):
    """DOKU's answer could not be decoded (not JSON, or the wrong shape)."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        raw_body: bytes = b"",
        references: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, references=references)
        self.http_status = http_status
        self.raw_body = raw_body


class SignatureVerificationError(DokuError):
    """A response or notification signature is missing, malformed or wrong."""


class TransferOutcomeUnknownError(DokuError):
    """A money-moving call may or may not have taken effect, and the SDK could not tell.

    Do not pay again under new references. Settle it later with the references it carries:
    ``check_status`` with ``partner_reference_no`` and ``external_id`` for Kirim DOKU, a resend
    with the same ``request_id`` (DOKU replays it) or a status call for the Non-SNAP products.
    ``last_error`` is the error that left the outcome open.
    """

    def __init__(
        self,
        message: str,
        *,
        references: Mapping[str, str],
        last_error: BaseException | None = None,
    ) -> None:
        super().__init__(message, references=references)
        self.last_error = last_error

    @property
    def partner_reference_no(self) -> str:
        """Kirim DOKU ``partnerReferenceNo`` (``""`` for other products)."""
        return self.references.get("partnerReferenceNo", "")

    @property
    def external_id(self) -> str:
        """Kirim DOKU ``X-EXTERNAL-ID`` (``""`` for other products)."""
        return self.references.get("X-EXTERNAL-ID", "")

    @property
    def request_id(self) -> str:
        """Non-SNAP ``Request-Id``, DOKU's idempotency key (``""`` for Kirim DOKU)."""
        return self.references.get("Request-Id", "")


def split_code(http_status: int, response_code: str) -> tuple[int, str]:
    """``(status, case)`` of an answer: from its seven-digit ``responseCode`` (``"4034314"``
    gives ``(403, "14")``), or the HTTP status and ``""`` without a usable code."""
    if len(response_code) == 7 and response_code.isdigit():
        return int(response_code[:3]), response_code[5:]
    return http_status, ""


_UNAUTHORIZED_HINT: Mapping[str, str] = MappingProxyType(
    {
        "token": (
            " (the token request: check the client id (DOKU_CLIENT_ID) and that the private key "
            "is the one whose public key is registered with DOKU for it)"
        ),
        "call": (
            " (DOKU issued a token, so the client id and private key are right: check the "
            "client secret (DOKU_CLIENT_SECRET), the HMAC key that signs every call)"
        ),
    }
)


def error_for(
    http_status: int,
    code: str,
    message: str,
    *,
    raw_body: bytes = b"",
    references: Mapping[str, str] | None = None,
    retry_after: float | None = None,
    url: str = "",
) -> DokuAPIError:
    """Build the typed error for a non-success answer: the one code-to-error table.

    A bare 404 (no DOKU code, no message) names ``url``: it is what a wrong ``base_url`` or
    path family gives, and the path tried is what tells.
    """
    status, case = split_code(http_status, code)
    text = f"DOKU answered {code or http_status}: {message or 'no message'}"
    if http_status == 404 and not code and not message and url:
        text = (
            f"HTTP 404 from {url}: nothing answers at this path; check base_url "
            "(DOKU_BASE_URL) and kirim_paths (DOKU_KIRIM_PATHS)"
        )
    if status == 401 and case == "00" and len(code) == 7:
        text += _UNAUTHORIZED_HINT["token" if code[3:5] == "73" else "call"]
    cls: type[DokuAPIError]
    if status == 400:
        cls = BadRequestError
    elif status == 401:
        cls = TokenError if case in ("01", "03") else AuthenticationError
    elif status == 403:
        cls = InsufficientFundsError if case == "14" else BusinessRejectionError
    elif status == 404:
        cls = InvalidAccountError if case == "11" else BusinessRejectionError
    elif status == 409:
        cls = DuplicateRequestError
    elif status == 429:
        cls = RateLimitError
    elif status >= 500 or status == 408:
        cls = ServerError
    elif 400 <= status < 500:
        cls = BusinessRejectionError
    else:
        cls = DokuAPIError
    error = cls(
        text,
        http_status=http_status,
        response_code=code,
        response_message=message,
        raw_body=raw_body,
        references=references,
    )
    if isinstance(error, RateLimitError):
        error.retry_after = retry_after
    return error
