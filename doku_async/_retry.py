"""Retry policy: classify an answer, compute backoff, read ``Retry-After``."""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from . import _constants as C
from ._exceptions import DokuTimeoutError, split_code

__all__ = [
    "Disposition",
    "RetryBudget",
    "RetryPolicy",
    "classify",
    "parse_retry_after",
    "split_code",
]


class Disposition(enum.Enum):
    """What an answer means for the request flow."""

    SUCCESS = "success"
    """``200xx00``-class success."""
    IN_PROGRESS = "in_progress"
    """``202xx00``: accepted, outcome pending."""
    TOKEN = "token"
    """``401xx01``/``401xx03``: drop the token, re-sign, retry once."""
    RETRYABLE = "retryable"
    """429, 5xx, 403xx04/06: try again later (reads); for a transfer 5xx means unknown."""
    DUPLICATE = "duplicate"
    """409xx: a reference was already used."""
    FINAL = "final"
    """A definite rejection: raise."""


def classify(http_status: int, response_code: str) -> Disposition:
    """Classify an answer from its seven-digit ``responseCode`` (or its HTTP status without one)."""
    status, case = split_code(http_status, response_code)
    if 200 <= status < 300:
        return Disposition.IN_PROGRESS if status == 202 else Disposition.SUCCESS
    if status == 401 and case in ("01", "03"):
        return Disposition.TOKEN
    if status == 409:
        return Disposition.DUPLICATE
    if status == 429 or status >= 500 or status == 408 or (status == 403 and case in ("04", "06")):
        return Disposition.RETRYABLE
    return Disposition.FINAL


def parse_retry_after(value: str | None) -> float | None:
    """Read a ``Retry-After`` header: delta seconds or an HTTP date. ``None`` if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How reads are retried and how hard a transfer's outcome is pursued.

    Attributes:
        max_attempts: attempts per read operation (1 disables retries).
        initial_backoff: first backoff in seconds; doubled per attempt.
        max_backoff: cap on a computed backoff.
        max_retry_after: cap on a server's ``Retry-After`` hint.
        status_checks: check-status rounds used to settle a transfer whose outcome is unknown.
        jitter: spread backoffs over ``[0.5, 1.0] x`` the computed value.
    """

    max_attempts: int = C.DEFAULT_MAX_ATTEMPTS
    initial_backoff: float = C.DEFAULT_INITIAL_BACKOFF
    max_backoff: float = C.DEFAULT_MAX_BACKOFF
    max_retry_after: float = C.DEFAULT_MAX_RETRY_AFTER
    status_checks: int = C.DEFAULT_STATUS_CHECKS
    jitter: bool = True

    def __post_init__(self) -> None:
        from ._exceptions import ConfigurationError

        if self.max_attempts < 1:
            raise ConfigurationError("retry.max_attempts: must be at least 1")
        if self.status_checks < 1:
            raise ConfigurationError("retry.status_checks: must be at least 1")
        if min(self.initial_backoff, self.max_backoff, self.max_retry_after) < 0:
            raise ConfigurationError("retry: backoff values must not be negative")

    def backoff(
        self,
        attempt: int,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        base = min(self.max_backoff, self.initial_backoff * (2.0 ** min(attempt - 1, 62)))
        if self.jitter:
            return base * (0.5 + rand() / 2)
        return base


class RetryBudget:
    """The one retry budget every request loop consults (SNAP reads, the money rule, Non-SNAP
    calls): an operation's total deadline, each attempt's timeout within it, and the backoff
    before the next attempt. Time, sleeping and jitter are injected, so tests are exact."""

    __slots__ = (
        "_attempt_timeout",
        "_clock",
        "_rand",
        "_sleep",
        "_stopped",
        "_total_timeout",
        "policy",
    )

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        attempt_timeout: float,
        total_timeout: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]],
        rand: Callable[[], float] = random.random,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        self.policy = policy
        self._stopped = stopped
        self._attempt_timeout = attempt_timeout
        self._total_timeout = total_timeout
        self._clock = clock
        self._sleep = sleep
        self._rand = rand

    def deadline(self) -> float:
        """The monotonic deadline of an operation starting now."""
        return self._clock() + self._total_timeout

    def remaining(self, deadline: float) -> float:
        """Seconds left before ``deadline`` (negative once passed)."""
        return deadline - self._clock()

    def attempt_timeout(self, deadline: float, references: Mapping[str, str]) -> float:
        """Time left for one attempt; raises when the operation's deadline has passed."""
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise DokuTimeoutError(
                "the operation's total deadline ran out", request_sent=False, references=references
            )
        return min(self._attempt_timeout, remaining)

    async def backoff_or_give_up(
        self, attempt: int, max_attempts: int, deadline: float, retry_after: float | None
    ) -> bool:
        """Sleep before the next attempt; ``False`` when attempts or time are used up, or the
        client was closed (nothing is retried on a closed client)."""
        if attempt >= max_attempts or self._stopped():
            return False
        delay = self.policy.backoff(attempt, retry_after, self._rand)
        if self._clock() + delay >= deadline:
            return False
        await self._sleep(delay)
        return True
