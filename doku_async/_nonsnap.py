"""The Non-SNAP request flow (Payout Link, sub-account Transfers, RDL).

* One ``Request-Id`` per operation, kept across every attempt: it is DOKU's idempotency key.
  Each attempt gets a fresh ``Request-Timestamp`` and ``Signature``; the body is encoded once.
* DOKU answers a repeated ``Request-Id`` and body with the original answer and HTTP 409: that
  is returned as the result, marked ``replayed``, never as a second payout.
* Answers are verified (``Client-Id``, ``Request-Id``, ``Response-Timestamp``, ``Signature``
  over the raw bytes) in constant time, per the client's ``response_signatures`` mode.
* A money-moving call whose outcome is unclear (timeout after sending, dropped connection,
  408, 5xx) is resent with the same ``Request-Id``; if no resend settles it, an optional status
  call does (Payout Link), else :class:`TransferOutcomeUnknownError`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from . import _serde
from ._exceptions import (
    DokuAPIError,
    DokuError,
    DokuTransportError,
    DuplicateRequestError,
    RateLimitError,
    ResponseDecodeError,
    SignatureVerificationError,
    TransferOutcomeUnknownError,
    error_for,
)
from ._retry import RetryBudget, parse_retry_after
from ._settings import ResponseSignatureMode
from ._signing import HmacKey, format_timestamp, non_snap_signature, verify_non_snap_signature
from ._transport import RawResponse, Transport
from .models._nonsnap import NonSnapError, NonSnapResponse

__all__ = [
    "NonSnapOperation",
    "NonSnapOperations",
    "NonSnapRequester",
]

log = logging.getLogger("doku_async")

N = TypeVar("N", bound=NonSnapResponse)


@dataclass(frozen=True, slots=True)
class NonSnapOperation:
    """One Non-SNAP endpoint: name (for logs), signed path, URL, signing key, and whether it
    moves money."""

    name: str
    path: str
    url: str
    key: HmacKey
    money_moving: bool


@dataclass(frozen=True, slots=True)
class NonSnapOperations:
    """The Non-SNAP endpoints a client talks to."""

    payout_link_initiate: NonSnapOperation
    payout_link_status: NonSnapOperation
    transfers: NonSnapOperation
    rdl: NonSnapOperation


class NonSnapRequester:
    """Signs, sends, verifies and (when safe) resends Non-SNAP calls for one client.

    Deadlines, attempt timeouts and backoff come from the client's one :class:`RetryBudget`.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        budget: RetryBudget,
        client_id: str,
        response_signatures: ResponseSignatureMode,
        max_attempts: int,
        wall_clock: Callable[[], float],
    ) -> None:
        self._transport = transport
        self._flow = budget
        self._client_id = client_id
        self._mode: ResponseSignatureMode = response_signatures
        self._max_attempts = max_attempts
        self._wall_clock = wall_clock

    def __repr__(self) -> str:
        return f"NonSnapRequester(client_id={self._client_id!r}, responses={self._mode!r})"

    def _verify(
        self, op: NonSnapOperation, raw: RawResponse, request_id: str, refs: Mapping[str, str]
    ) -> None:
        if self._mode == "off":
            return
        signature = raw.headers.get("Signature")
        if signature is None:
            if self._mode == "required" or (self._mode == "money_required" and op.money_moving):
                # An unsigned answer to a money-moving call could be anyone's: it is not
                # taken as DOKU's (response_signatures="if_present" accepts it).
                raise SignatureVerificationError(
                    f"DOKU's answer to {op.path} is not signed", references=refs
                )
            return
        client_id = raw.headers.get("Client-Id", "")
        echoed = raw.headers.get("Request-Id", "")
        timestamp = raw.headers.get("Response-Timestamp", "")
        problem = ""
        if client_id != self._client_id:
            problem = "Client-Id does not match"
        elif echoed != request_id:
            problem = "Request-Id does not match"
        elif not timestamp:
            problem = "Response-Timestamp is missing"
        elif not verify_non_snap_signature(
            op.key, client_id, echoed, timestamp, op.path, raw.body, signature
        ):
            problem = "Signature does not match"
        if problem:
            raise SignatureVerificationError(
                f"DOKU's answer to {op.path} failed verification: {problem}; do not trust it "
                "(a money-moving call can be resent with the same request_id to get DOKU's replay)",
                references=refs,
            )

    def _error(self, raw: RawResponse, refs: dict[str, str]) -> DokuAPIError:
        body = _serde.try_decode(NonSnapError, raw.body) or NonSnapError()
        echoed = body.data.get("reference_id") if body.data else None
        if isinstance(echoed, str) and refs.get("reference_id") != echoed:
            refs = {**refs, "data.reference_id": echoed}
        error = error_for(
            raw.status,
            "",
            body.describe(),
            raw_body=raw.body,
            references=refs,
            retry_after=parse_retry_after(raw.headers.get("Retry-After")),
            url=raw.url,
        )
        error.details = body.errors if body.errors is not None else body.data
        return error

    async def call(
        self,
        op: NonSnapOperation,
        body: bytes,
        response_type: type[N],
        *,
        request_id: str,
        references: Mapping[str, str],
        resolve: Callable[[], Awaitable[N | None]] | None = None,
        matches: Callable[[N], bool] | None = None,
    ) -> N:
        """Run one operation to a definite answer, or raise a typed error.

        ``resolve`` asks the product's status call: it returns the result, ``None`` when DOKU
        says there is none, and raises when it cannot tell. A 409 without this request's
        result is settled through it (a reference DOKU knows is never "nothing paid").
        ``matches`` tells whether a replayed (409) or status-resolved result is this request's
        (same key and amount); one that is not is never returned as ours.
        Once an attempt of a money-moving call may have reached DOKU, no later answer is
        taken as "nothing was paid": the outcome is settled by ``resolve`` or reported unknown.
        """
        call = _Call(self, op, body, response_type, request_id, references, resolve, matches)
        return await call.run()

    def _headers(self, op: NonSnapOperation, request_id: str, body: bytes) -> dict[str, str]:
        ts = format_timestamp("utc", self._wall_clock())
        return {
            "Content-Type": "application/json",
            "Client-Id": self._client_id,
            "Request-Id": request_id,
            "Request-Timestamp": ts,
            "Signature": non_snap_signature(op.key, self._client_id, request_id, ts, op.path, body),
        }


class _Stop(Exception):
    """The attempts are over: settle the outcome (or raise the last error)."""


class _Call(Generic[N]):
    """One Non-SNAP operation: its attempts under one ``Request-Id``, then its settlement."""

    def __init__(
        self,
        requester: NonSnapRequester,
        op: NonSnapOperation,
        body: bytes,
        response_type: type[N],
        request_id: str,
        references: Mapping[str, str],
        resolve: Callable[[], Awaitable[N | None]] | None,
        matches: Callable[[N], bool] | None,
    ) -> None:
        self.requester = requester
        self.op = op
        self.body = body
        self.response_type = response_type
        self.request_id = request_id
        self.refs = {"Request-Id": request_id, **references}
        self.resolve = resolve
        self.matches = matches
        self.deadline = requester._flow.deadline()
        self.attempts = 0
        self.maybe_sent = False  # some attempt may have reached DOKU without a readable answer
        self.final = False  # the last answer was a definite rejection
        self.last: DokuError | None = None

    async def run(self) -> N:
        flow = self.requester._flow
        while True:
            self.attempts += 1
            try:
                result, retry_after = await self.attempt()
            except _Stop:
                break
            if result is not None:
                return result
            if not await flow.backoff_or_give_up(
                self.attempts, self.requester._max_attempts, self.deadline, retry_after
            ):
                break
        return await self.settle()

    def ours(self, answer: N) -> bool:
        return self.matches is None or self.matches(answer)

    async def attempt(self) -> tuple[N | None, float | None]:
        """One attempt: ``(result, None)``, or ``(None, retry_after)`` to try again; raises
        :class:`_Stop` when the attempts are over, or a definite error."""
        op, requester = self.op, self.requester
        headers = requester._headers(op, self.request_id, self.body)
        try:
            raw = await requester._transport.post(
                op.url,
                self.body,
                headers,
                timeout=requester._flow.attempt_timeout(self.deadline, self.refs),
            )
        except DokuTransportError as exc:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("POST %s -> %s (attempt %d)", op.path, type(exc).__name__, self.attempts)
            self.last = exc.with_references(self.refs)
            self.maybe_sent = self.maybe_sent or exc.request_sent
            return None, None
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "POST %s -> %d in %.1fms (attempt %d)",
                op.path,
                raw.status,
                raw.elapsed * 1000,
                self.attempts,
            )
        try:
            requester._verify(op, raw, self.request_id, self.refs)
        except SignatureVerificationError as exc:
            self.last, self.final = exc, True
            raise _Stop from None
        if 200 <= raw.status < 300 or raw.status == 409:
            return self.answered(raw), None
        error = requester._error(raw, self.refs)
        self.last = error
        if isinstance(error, RateLimitError):
            return None, error.retry_after
        if raw.status == 408 or raw.status >= 500:
            self.maybe_sent = True
            return None, None
        self.final = True
        raise _Stop

    def answered(self, raw: RawResponse) -> N:
        """A 2xx or 409 answer: this request's result, or :class:`_Stop` to settle it."""
        decoded = _serde.try_decode(self.response_type, raw.body)
        replayed = raw.status == 409
        if decoded is not None and (not replayed or (decoded.is_result() and self.ours(decoded))):
            decoded.request_id = self.request_id
            decoded.replayed = replayed
            decoded.resolved_by_status = False
            return decoded
        self.final = True
        if not replayed:
            self.last = ResponseDecodeError(
                f"cannot decode DOKU's answer (HTTP {raw.status})",
                http_status=raw.status,
                raw_body=raw.body,
                references=self.refs,
            )
            raise _Stop
        # 409 without this request's result: the Request-Id or the reference is already
        # known to DOKU, maybe from this very operation (an earlier attempt whose answer was
        # lost, or an earlier run). A reference DOKU knows is never "nothing paid": settle it
        # through the status call.
        error = self.requester._error(raw, self.refs)
        self.last = DuplicateRequestError(
            "DOKU answered 409 without this request's result: the Request-Id "
            f"or the reference was already used ({error.response_message})",
            http_status=409,
            response_message=error.response_message,
            raw_body=raw.body,
            references=error.references,
            details=error.details,
        )
        if not (self.op.money_moving and self.resolve is not None):
            raise self.last  # no status call to settle it with
        self.maybe_sent = True
        raise _Stop

    async def settle(self) -> N:
        """The attempts are over: the result the status call finds, or the typed error."""
        last = self.last
        assert last is not None
        if not (self.op.money_moving and self.maybe_sent):
            raise last
        if self.resolve is not None:
            asked = True  # ``resolve`` answers None only when DOKU says there is no result
            try:
                found = await self.resolve()
            except DokuError:
                found, asked = None, False
            if found is not None and self.ours(found):
                found.request_id = self.request_id
                found.replayed = False
                found.resolved_by_status = True
                return found
            if asked and isinstance(last, DuplicateRequestError):
                # The status call finds the reference with other details (it belongs to
                # another payout), or does not find it (the 409 was about the Request-Id):
                # either way this request's details were never paid under it.
                raise last
        earlier = " (an earlier attempt may have reached DOKU)" if self.final else ""
        raise TransferOutcomeUnknownError(
            f"the outcome of {self.op.name} is unclear after {self.attempts} attempt(s) with the "
            f"same Request-Id ({type(last).__name__}){earlier}; resend with the same request_id "
            "later, never with a new one",
            references=self.refs,
            last_error=last,
        )
