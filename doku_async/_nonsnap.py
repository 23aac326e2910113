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
from typing import Literal, TypeVar

from . import _serde
from ._base_client import SnapRequester, error_for
from ._exceptions import (
    DokuAPIError,
    DokuError,
    DokuTransportError,
    DuplicateRequestError,
    RateLimitError,
    ResponseDecodeError,
    SignatureVerificationError,
    TransferOutcomeUnknownError,
)
from ._retry import parse_retry_after
from ._signing import HmacKey, format_timestamp, non_snap_signature, verify_non_snap_signature
from ._transport import RawResponse, Transport
from .models._nonsnap import NonSnapError, NonSnapResponse

__all__ = ["NonSnapOperation", "NonSnapRequester", "ResponseSignatureMode"]

log = logging.getLogger("doku_async")

N = TypeVar("N", bound=NonSnapResponse)

ResponseSignatureMode = Literal["money_required", "required", "if_present", "off"]
"""How Non-SNAP answers are verified: ``"money_required"`` (the default: the answer to a
money-moving call must be signed, a status read is verified when signed), ``"required"``
(every answer must be signed), ``"if_present"`` (verify when signed), ``"off"``."""
RESPONSE_SIGNATURE_MODES: tuple[str, ...] = ("money_required", "required", "if_present", "off")


@dataclass(frozen=True, slots=True)
class NonSnapOperation:
    """One Non-SNAP endpoint: name (for logs), signed path, URL, signing key, and whether it
    moves money."""

    name: str
    path: str
    url: str
    key: HmacKey
    money_moving: bool


class NonSnapRequester:
    """Signs, sends, verifies and (when safe) resends Non-SNAP calls for one client.

    Deadlines, backoff and the retry policy are shared with the SNAP flow through ``snap``.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        snap: SnapRequester,
        client_id: str,
        response_signatures: ResponseSignatureMode,
        max_attempts: int,
        wall_clock: Callable[[], float],
    ) -> None:
        self._transport = transport
        self._flow = snap
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
        flow = self._flow
        deadline = flow.deadline()
        refs = {"Request-Id": request_id, **references}
        attempt_no = 0
        maybe_sent = False  # some attempt may have reached DOKU without a readable answer
        final = False  # the last answer was a definite rejection
        while True:
            attempt_no += 1
            retry_after: float | None = None
            ts = format_timestamp("utc", self._wall_clock())
            headers = {
                "Content-Type": "application/json",
                "Client-Id": self._client_id,
                "Request-Id": request_id,
                "Request-Timestamp": ts,
                "Signature": non_snap_signature(
                    op.key, self._client_id, request_id, ts, op.path, body
                ),
            }
            try:
                raw = await self._transport.post(
                    op.url, body, headers, timeout=flow.attempt_timeout(deadline, refs)
                )
            except DokuTransportError as exc:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("POST %s -> %s (attempt %d)", op.path, type(exc).__name__, attempt_no)
                last: DokuError = exc.with_references(refs)
                maybe_sent = maybe_sent or exc.request_sent
            else:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "POST %s -> %d in %.1fms (attempt %d)",
                        op.path,
                        raw.status,
                        raw.elapsed * 1000,
                        attempt_no,
                    )
                try:
                    self._verify(op, raw, request_id, refs)
                except SignatureVerificationError as exc:
                    last, final = exc, True
                    break
                status = raw.status
                if 200 <= status < 300 or status == 409:
                    decoded = _serde.try_decode(response_type, raw.body)
                    replayed = status == 409
                    if decoded is not None and (
                        not replayed
                        or (decoded.is_result() and (matches is None or matches(decoded)))
                    ):
                        decoded.request_id = request_id
                        decoded.replayed = replayed
                        decoded.resolved_by_status = False
                        return decoded
                    if not replayed:
                        last = ResponseDecodeError(
                            f"cannot decode DOKU's answer (HTTP {status})",
                            http_status=status,
                            raw_body=raw.body,
                            references=refs,
                        )
                    else:
                        # 409 without this request's result: the Request-Id or the reference
                        # is already known to DOKU, maybe from this very operation (an earlier
                        # attempt whose answer was lost, or an earlier run). A reference DOKU
                        # knows is never "nothing paid": settle it through the status call.
                        error = self._error(raw, refs)
                        last = DuplicateRequestError(
                            "DOKU answered 409 without this request's result: the Request-Id "
                            f"or the reference was already used ({error.response_message})",
                            http_status=409,
                            response_message=error.response_message,
                            raw_body=raw.body,
                            references=error.references,
                            details=error.details,
                        )
                        if not (op.money_moving and resolve is not None):
                            raise last  # no status call to settle it with
                        maybe_sent = True
                    final = True
                    break
                error = self._error(raw, refs)
                last = error
                if isinstance(error, RateLimitError):
                    retry_after = error.retry_after
                elif status == 408 or status >= 500:
                    maybe_sent = True
                else:
                    final = True
                    break
            if not await flow.backoff_or_give_up(
                attempt_no, self._max_attempts, deadline, retry_after
            ):
                break
        if not (op.money_moving and maybe_sent):
            raise last
        if resolve is not None:
            asked = True  # ``resolve`` answers None only when DOKU says there is no result
            try:
                found = await resolve()
            except DokuError:
                found, asked = None, False
            if found is not None and (matches is None or matches(found)):
                found.request_id = request_id
                found.replayed = False
                found.resolved_by_status = True
                return found
            if asked and isinstance(last, DuplicateRequestError):
                # The status call finds the reference with other details (it belongs to
                # another payout), or does not find it (the 409 was about the Request-Id):
                # either way this request's details were never paid under it.
                raise last
        earlier = " (an earlier attempt may have reached DOKU)" if final else ""
        raise TransferOutcomeUnknownError(
            f"the outcome of {op.name} is unclear after {attempt_no} attempt(s) with the same "
            f"Request-Id ({type(last).__name__}){earlier}; resend with the same request_id "
            "later, never with a new one",
            references=refs,
            last_error=last,
        )
