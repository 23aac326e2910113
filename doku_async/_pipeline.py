"""The SNAP request pipeline shared by every Kirim DOKU operation.

1. The caller hands over a body already encoded once; it is hashed once.
2. Each attempt takes a cached token, a fresh timestamp and a fresh signature.
3. The transport answers or raises a typed error that says whether the request may have
   reached DOKU.
4. :func:`~doku_async._retry.classify` decides; reads retry inside the client's one
   :class:`~doku_async._retry.RetryBudget`. Transfers are not sent from here: the money rule
   lives in :mod:`doku_async._settlement`, which uses :meth:`SnapRequester.attempt` and
   :meth:`SnapRequester.check_status`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric import rsa

from . import _serde
from ._constants import MISSING_PRIVATE_KEY
from ._exceptions import (
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    DokuAPIError,
    DokuConnectionError,
    DokuError,
    DokuTimeoutError,
    DokuTransportError,
    RateLimitError,
    ResponseDecodeError,
    error_for,
)
from ._retry import (
    Disposition,
    RetryBudget,
    RetryPolicy,
    classify,
    parse_retry_after,
    split_code,
)
from ._signing import (
    HmacKey,
    TimestampFormat,
    body_sha256_hex,
    format_timestamp,
    snap_string_to_sign,
    token_signature,
)
from ._tokens import TokenCache
from ._transport import RawResponse, Transport
from .models._base import SnapResponse
from .models.kirim import (
    CheckStatusResponse,
    TokenRequest,
    TokenResponse,
    TransactionStatus,
)

__all__ = [
    "KirimOperations",
    "SnapOperation",
    "SnapRequester",
    "TokenUnavailable",
    "new_external_id",
]

log = logging.getLogger("doku_async")

R = TypeVar("R", bound=SnapResponse)

_NO_REFERENCES: Mapping[str, str] = MappingProxyType({})
_TOKEN_BODY = _serde.encode(TokenRequest(grant_type="client_credentials"))


# X-EXTERNAL-ID only has to be unique, not secret: a generator seeded from os.urandom is
# enough and ten times cheaper than reading os.urandom per call. A forked child would inherit
# its state and repeat the parent's ids, so the child reseeds it from os.urandom (issue 17).
_ids = random.Random()
if hasattr(os, "register_at_fork"):  # pragma: no branch (absent on Windows only)
    os.register_at_fork(after_in_child=_ids.seed)


def new_external_id() -> str:
    """A fresh ``X-EXTERNAL-ID``: 32 random decimal digits (DOKU allows up to 36)."""
    return f"{_ids.getrandbits(106):032d}"


@dataclass(frozen=True, slots=True)
class SnapOperation:
    """One SNAP endpoint: its name (for logs), signed path, full URL and service code."""

    name: str
    path: str
    url: str
    service_code: str


@dataclass(frozen=True, slots=True)
class KirimOperations:
    """The Kirim DOKU endpoints a client talks to (built once from its path family)."""

    account_inquiry: SnapOperation
    balance_inquiry: SnapOperation
    transfer_bank: SnapOperation
    check_status: SnapOperation


class TokenUnavailable(Exception):
    """No access token could be had; ``error`` is what to raise (never retried again)."""

    def __init__(self, error: DokuError) -> None:
        super().__init__(error.message)
        self.error = error


class _Answer:
    """A decoded answer: the raw response, its code, its disposition and the decoded body."""

    __slots__ = ("code", "decoded", "disposition", "raw")

    def __init__(
        self, raw: RawResponse, code: str, disposition: Disposition, decoded: SnapResponse | None
    ) -> None:
        self.raw = raw
        self.code = code
        self.disposition = disposition
        self.decoded = decoded

    def error(self, references: Mapping[str, str], *, redact_body: bool = False) -> DokuError:
        if self.disposition is Disposition.SUCCESS and self.decoded is None:
            return ResponseDecodeError(
                f"cannot decode DOKU's answer (HTTP {self.raw.status})",
                http_status=self.raw.status,
                raw_body=b"" if redact_body else self.raw.body,
                references=references,
            )
        message = self.decoded.response_message if self.decoded is not None else ""
        return error_for(
            self.raw.status,
            self.code,
            message,
            raw_body=b"" if redact_body else self.raw.body,
            references=references,
            retry_after=parse_retry_after(self.raw.headers.get("Retry-After")),
            url=self.raw.url,
        )


def _read_answer(raw: RawResponse, response_type: type[R]) -> _Answer:
    """Decode once into the operation's type (all its fields are optional, so error bodies
    decode too); fall back to the bare envelope, then to the HTTP status alone."""
    decoded: SnapResponse | None = _serde.try_decode(response_type, raw.body)
    if decoded is None and response_type is not SnapResponse:
        envelope = _serde.try_decode(SnapResponse, raw.body)
        code = envelope.response_code if envelope is not None else ""
        disposition = classify(raw.status, code)
        # A success code inside a body of the wrong shape is not a usable success.
        return _Answer(
            raw, code, disposition, envelope if disposition is not Disposition.SUCCESS else None
        )
    code = decoded.response_code if decoded is not None else ""
    return _Answer(raw, code, classify(raw.status, code), decoded)


class SnapRequester:
    """Signs, sends, retries and settles SNAP calls for one client."""

    def __init__(
        self,
        *,
        transport: Transport,
        client_id: str,
        private_key: rsa.RSAPrivateKey | None,
        token_op: SnapOperation,
        token_timestamp_format: TimestampFormat,
        token_refresh_margin: float,
        secret_key: HmacKey,
        channel_id: str,
        timestamp_format: TimestampFormat,
        attempt_timeout: float,
        total_timeout: float,
        retry: RetryPolicy,
        check_status_service_code: str,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        rand: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self._private_key = private_key
        self._token_op = token_op
        self._token_ts_format: TimestampFormat = token_timestamp_format
        self.tokens = TokenCache(self.fetch_token, clock=clock, refresh_margin=token_refresh_margin)
        self.rate_limit_listeners: list[Callable[[float | None], None]] = []
        """Each is called with the ``Retry-After`` hint (or ``None``) whenever DOKU answers
        429 (the bulk runner's limiter listens here while it runs)."""
        self._client_id = client_id
        self._key = secret_key
        self._channel_id = channel_id
        self._ts_format: TimestampFormat = timestamp_format
        self.budget = RetryBudget(
            retry,
            attempt_timeout=attempt_timeout,
            total_timeout=total_timeout,
            clock=clock,
            sleep=sleep,
            rand=rand,
            stopped=lambda: transport.closed,
        )
        self.retry = retry
        self.check_service_code = check_status_service_code
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._wall_clock = wall_clock

    def __repr__(self) -> str:
        return f"SnapRequester(client_id={self._client_id!r})"

    # --- one signed attempt ------------------------------------------------------------------

    async def _token(self, deadline: float, references: Mapping[str, str]) -> str:
        """The cached token, or one fetched (with its own retries) within the deadline.

        Raises :class:`TokenUnavailable`: the fetch already retried, so callers must not retry
        it again, and the operation's own request was never sent.
        """
        cached = self.tokens.peek()
        if cached is not None:
            return cached
        remaining = deadline - self._clock()
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                return await self.tokens.get()
        except TimeoutError:
            raise TokenUnavailable(
                DokuTimeoutError(
                    "timed out waiting for an access token",
                    request_sent=False,
                    references=references,
                )
            ) from None
        except ClientClosedError:
            raise TokenUnavailable(ClientClosedError(references=references)) from None
        except DokuTransportError as exc:
            kind = DokuTimeoutError if isinstance(exc, DokuTimeoutError) else DokuConnectionError
            raise TokenUnavailable(
                kind(
                    f"cannot get an access token: {exc.message}",
                    request_sent=False,
                    references=references,
                )
            ) from None
        except DokuError as exc:
            raise TokenUnavailable(exc) from None

    async def attempt(
        self,
        op: SnapOperation,
        body: bytes,
        body_hash: str,
        external_id: str,
        deadline: float,
        attempt_no: int,
        response_type: type[R],
        references: Mapping[str, str],
    ) -> _Answer:
        """Send once; on ``401xx01``/``401xx03`` drop the token, re-sign and send once more."""
        refreshed = False
        if "X-EXTERNAL-ID" not in references:
            references = {**references, "X-EXTERNAL-ID": external_id}
        while True:
            token = await self._token(deadline, references)
            timeout = self.budget.attempt_timeout(deadline, references)
            ts = format_timestamp(self._ts_format, self._wall_clock())
            signature = self._key.sign(snap_string_to_sign("POST", op.path, token, body_hash, ts))
            headers = {
                "Content-Type": "application/json",
                "Authorization": "Bearer " + token,
                "X-TIMESTAMP": ts,
                "X-SIGNATURE": signature,
                "X-PARTNER-ID": self._client_id,
                "X-EXTERNAL-ID": external_id,
                "CHANNEL-ID": self._channel_id,
            }
            try:
                raw = await self._transport.post(op.url, body, headers, timeout=timeout)
            except DokuTransportError as exc:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("POST %s -> %s (attempt %d)", op.path, type(exc).__name__, attempt_no)
                raise exc.with_references(references) from None
            answer = _read_answer(raw, response_type)
            self._log_attempt(op, raw, answer, attempt_no)
            if self.rate_limit_listeners and split_code(raw.status, answer.code)[0] == 429:
                hint = parse_retry_after(raw.headers.get("Retry-After"))
                for listener in self.rate_limit_listeners:
                    listener(hint)
            if answer.disposition is Disposition.TOKEN and not refreshed:
                self.tokens.invalidate(token)
                refreshed = True
                continue
            return answer

    # --- reads -----------------------------------------------------------------------------

    def _judge(
        self, answer: _Answer, references: Mapping[str, str], *, redact_body: bool = False
    ) -> tuple[DokuError, bool, float | None]:
        """For a non-success answer of an idempotent call: the error, whether to retry it
        (429, 5xx, 202, 408, 403xx04/06, 409xx00) and DOKU's ``Retry-After`` hint."""
        error = answer.error(references, redact_body=redact_body)
        retryable = answer.disposition in (Disposition.RETRYABLE, Disposition.IN_PROGRESS) or (
            answer.disposition is Disposition.DUPLICATE and answer.code[5:] == "00"
        )
        retry_after = error.retry_after if isinstance(error, RateLimitError) else None
        return error, retryable, retry_after

    async def _retrying(
        self,
        send_once: Callable[[int], Awaitable[_Answer]],
        *,
        deadline: float,
        max_attempts: int,
        references: Mapping[str, str],
        redact_body: bool = False,
    ) -> _Answer:
        """Run ``send_once`` until a decoded success, retrying what :meth:`_judge` allows with
        backoff inside the deadline; raise the last error otherwise."""
        attempt_no = 0
        while True:
            attempt_no += 1
            retry_after: float | None = None
            try:
                answer = await send_once(attempt_no)
            except TokenUnavailable as exc:
                raise exc.error from None
            except DokuTransportError as exc:
                last: DokuError = exc
            else:
                if answer.disposition is Disposition.SUCCESS and answer.decoded is not None:
                    return answer
                last, retryable, retry_after = self._judge(
                    answer, references, redact_body=redact_body
                )
                if not retryable:
                    raise last
            if not await self.budget.backoff_or_give_up(
                attempt_no, max_attempts, deadline, retry_after
            ):
                raise last

    async def read(
        self,
        op: SnapOperation,
        body: bytes,
        response_type: type[R],
        *,
        references: Mapping[str, str] | None = None,
        deadline: float | None = None,
        max_attempts: int | None = None,
    ) -> R:
        """An idempotent call: retried on transport errors, 429, 5xx and 409xx00, each attempt
        with a fresh ``X-EXTERNAL-ID``, timestamp and signature, inside the deadline.

        The loop is written out here rather than through :meth:`_retrying`: this is the hot
        path, and every extra coroutine frame is paid again at each suspension.
        """
        deadline = self.budget.deadline() if deadline is None else deadline
        limit = self.retry.max_attempts if max_attempts is None else max_attempts
        body_hash = body_sha256_hex(body)
        base = references if references is not None else _NO_REFERENCES
        attempt_no = 0
        while True:
            attempt_no += 1
            external_id = new_external_id()
            retry_after: float | None = None
            try:
                answer = await self.attempt(
                    op, body, body_hash, external_id, deadline, attempt_no, response_type, base
                )
            except TokenUnavailable as exc:
                raise exc.error from None
            except DokuTransportError as exc:
                last: DokuError = exc
            else:
                if answer.disposition is Disposition.SUCCESS and answer.decoded is not None:
                    return answer.decoded  # type: ignore[return-value]
                last, retryable, retry_after = self._judge(
                    answer, {**base, "X-EXTERNAL-ID": external_id}
                )
                if not retryable:
                    raise last
            if not await self.budget.backoff_or_give_up(attempt_no, limit, deadline, retry_after):
                raise last

    async def fetch_token(self) -> tuple[str, float]:
        """Fetch a B2B access token (retried like a read). Returns ``(token, lifetime)``.

        Errors from this call never carry the answer's body, which may hold a token.
        """
        private_key = self._private_key
        if private_key is None:
            raise ConfigurationError(MISSING_PRIVATE_KEY)
        deadline = self.budget.deadline()

        async def send_once(attempt_no: int) -> _Answer:
            ts = format_timestamp(self._token_ts_format, self._wall_clock())
            headers = {
                "Content-Type": "application/json",
                "X-CLIENT-KEY": self._client_id,
                "X-TIMESTAMP": ts,
                "X-SIGNATURE": token_signature(private_key, self._client_id, ts),
            }
            timeout = self.budget.attempt_timeout(deadline, {})
            raw = await self._transport.post(
                self._token_op.url, _TOKEN_BODY, headers, timeout=timeout
            )
            answer = _read_answer(raw, TokenResponse)
            self._log_attempt(self._token_op, raw, answer, attempt_no)
            return answer

        try:
            answer = await self._retrying(
                send_once,
                deadline=deadline,
                max_attempts=self.retry.max_attempts,
                references=_NO_REFERENCES,
                redact_body=True,
            )
        except AuthenticationError as exc:
            exc.message += " (check client_id and the public key registered with DOKU)"
            raise
        token = answer.decoded
        assert isinstance(token, TokenResponse)
        if not token.access_token:
            raise ResponseDecodeError(
                "DOKU's token answer has no accessToken", http_status=answer.raw.status
            )
        return token.access_token, token.lifetime

    def _log_attempt(self, op: SnapOperation, raw: RawResponse, answer: _Answer, n: int) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "POST %s -> %d %s in %.1fms (attempt %d)",
                op.path,
                raw.status,
                answer.code or "-",
                raw.elapsed * 1000,
                n,
            )

    async def check_status(
        self,
        check_op: SnapOperation,
        body: bytes,
        partner_reference_no: str,
        *,
        deadline: float | None = None,
        max_attempts: int | None = None,
    ) -> CheckStatusResponse:
        """Ask check status, the one place that gives its answers their meaning.

        DOKU says "not found" two ways: ``latestTransactionStatus`` ``07`` in a success
        answer, or a ``404xx01`` error answer ("Transaction Not Found"). Both come back as a
        :class:`CheckStatusResponse` whose ``transaction_status`` is ``"07"`` (the error's
        code kept in ``response_code``), so the client, the money rule and the bulk runner's
        resume read "not found" the same way. Every other error is raised.
        """
        try:
            return await self.read(
                check_op,
                body,
                CheckStatusResponse,
                references={"originalPartnerReferenceNo": partner_reference_no},
                deadline=deadline,
                max_attempts=max_attempts,
            )
        except DokuAPIError as exc:
            if exc.response_code[:3] == "404" and exc.case_code == "01":
                return CheckStatusResponse(
                    raw_response_code=exc.response_code,
                    response_message=exc.response_message,
                    original_partner_reference_no=partner_reference_no,
                    latest_transaction_status=TransactionStatus.NOT_FOUND,
                )
            raise
