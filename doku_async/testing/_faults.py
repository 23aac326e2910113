"""Fault injection for the simulator: what the next N calls of an operation suffer."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

__all__ = ["FAULT_KINDS", "OPERATIONS", "Fault", "FaultKind", "FaultPlan"]

FaultKind = Literal[
    "latency",
    "hang_after_commit",
    "error",
    "error_after_commit",
    "drop_before_commit",
    "drop_after_commit",
]
FAULT_KINDS: frozenset[str] = frozenset(
    {
        "latency",
        "hang_after_commit",
        "error",
        "error_after_commit",
        "drop_before_commit",
        "drop_after_commit",
    }
)

OPERATIONS: frozenset[str] = frozenset(
    {
        "token",
        "account_inquiry",
        "balance_inquiry",
        "transfer_bank",
        "check_status",
        "payout_link_initiate",
        "payout_link_status",
        "transfers",
        "rdl",
    }
)


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault.

    Attributes:
        kind: ``"latency"`` (sleep ``delay``, then behave normally: the effect is committed even
            if the client gave up), ``"hang_after_commit"`` (commit at once, then wait ``delay``
            before answering normally: a timeout after the effect), ``"error"`` (answer
            ``status`` without committing),
            ``"error_after_commit"`` (commit, then answer ``status``: e.g. 500, 504 or 202),
            ``"drop_before_commit"`` / ``"drop_after_commit"`` (close the connection unanswered).
        status: HTTP status of an ``error`` answer.
        response_code: SNAP ``responseCode`` of an ``error`` answer; derived from ``status``
            and the operation's service code when empty.
        retry_after: ``Retry-After`` header of an ``error`` answer (for 429).
        delay: seconds of ``latency`` or ``hang_after_commit`` (also applied before an
            ``error`` or a drop: a drop after a delay is a timeout before the commit).
    """

    kind: FaultKind
    status: int = 500
    response_code: str = ""
    retry_after: str | None = None
    delay: float = 0.0


class FaultPlan:
    """FIFO queues of faults per operation."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Fault]] = {}

    def add(self, operation: str, fault: Fault, times: int) -> None:
        """Queue ``fault`` for the next ``times`` calls of ``operation``."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; one of {sorted(OPERATIONS)}")
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault.kind!r}; one of {sorted(FAULT_KINDS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._queues.setdefault(operation, deque()).extend([fault] * times)

    def take(self, operation: str) -> Fault | None:
        """The next fault for ``operation``, if any."""
        queue = self._queues.get(operation)
        return queue.popleft() if queue else None

    def pending(self, operation: str) -> int:
        """How many faults are still queued for ``operation``."""
        return len(self._queues.get(operation, ()))

    def clear(self) -> None:
        """Drop every queued fault."""
        self._queues.clear()
