"""Following DOKU after a run: check status for every payout DOKU may still change, recorded in
the journal.

A transfer DOKU accepted can stay UNPAID and later turn SUCCESS or FAILED, and a paid one can
be refunded. :func:`reconcile` asks check status for every journaled item that is not settled
(``accepted``, ``pending``, ``unknown``, ``sending``) and for the ``succeeded`` ones younger
than the refund window, and records what DOKU says through :meth:`Journal.apply`
(``source="reconcile"``): an event each, and the state moves only forward.

DOKU's documentation gives no deadline for a refund, so the window is a choice: succeeded
items whose state changed within the last ``refund_window`` seconds (7 days by default) are
asked again; older ones are taken as final.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .._client import DokuClient
from .._exceptions import AuthenticationError, ConfigurationError, DokuError
from .._states import PayoutState
from ..models.kirim import CheckStatusResponse, TransactionStatus
from ._journal import JournalEntry
from ._ratelimit import RateLimiter
from ._storage import JournalBackend

__all__ = ["DEFAULT_REFUND_WINDOW", "ReconcileChange", "ReconcileReport", "reconcile"]

log = logging.getLogger("doku_async.bulk")

DEFAULT_REFUND_WINDOW = 7 * 24 * 3600.0
"""Seconds during which a succeeded payout is checked again for a refund (7 days)."""

_KEPT = 100


@dataclass(frozen=True)
class ReconcileChange:
    """One item whose state DOKU's check status moved."""

    reference: str
    before: str
    after: str
    code: str
    message: str


@dataclass
class ReconcileReport:
    """What a :func:`reconcile` pass did.

    Attributes:
        checked: items asked about.
        changed: items whose state moved (the first 100 are in ``changes``).
        not_found: items DOKU does not know (``07``); those left ``sending`` became ``retry``.
        errors: items check status could not be had for (their state is unchanged; the first
            100 are in ``failures`` as ``(reference, error)``).
    """

    checked: int = 0
    changed: int = 0
    not_found: int = 0
    errors: int = 0
    changes: list[ReconcileChange] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


async def reconcile(
    client: DokuClient,
    journal: JournalBackend,
    *,
    refund_window: float = DEFAULT_REFUND_WINDOW,
    rate: float | RateLimiter | None = None,
    concurrency: int = 8,
    on_change: Callable[[ReconcileChange], None] | None = None,
) -> ReconcileReport:
    """Ask DOKU about every journaled payout it may still change; record its answers.

    Items ``accepted``, ``pending``, ``unknown`` or ``sending``, and ``succeeded`` items whose
    state changed less than ``refund_window`` seconds ago, get one check status each, paced by
    ``rate`` (requests per second, or a shared :class:`RateLimiter`; halved on 429). Each
    answer is recorded with :meth:`Journal.apply` (``source="reconcile"``): the state moves only
    forward. ``07`` (not found) for an item left ``sending`` means DOKU never got that transfer,
    so nothing was paid: it becomes ``retry``, which ``payouts resume`` pays.

    Raises:
        AuthenticationError, ConfigurationError: the credentials or settings are wrong (the
            pass stops; what was recorded stays).
        sqlite3.Error: the journal could not be written.
    """
    if concurrency < 1:
        raise ConfigurationError("concurrency: must be at least 1")
    limiter = rate if isinstance(rate, RateLimiter) else RateLimiter(rate)
    report = ReconcileReport()
    since = time.time() - refund_window
    todo = journal.entries_to_follow(succeeded_since=since if refund_window > 0 else None)
    client.rate_limit_listeners.append(limiter.throttle)
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(_worker(client, journal, limiter, todo, report, on_change))
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    finally:
        client.rate_limit_listeners.remove(limiter.throttle)
    return report


async def _worker(
    client: DokuClient,
    journal: JournalBackend,
    limiter: RateLimiter,
    todo: Iterator[JournalEntry],
    report: ReconcileReport,
    on_change: Callable[[ReconcileChange], None] | None,
) -> None:
    for entry in todo:
        reference = entry.item.reference
        await limiter.acquire()
        try:
            status = await client.kirim.check_status(
                original_partner_reference_no=reference, original_external_id=entry.external_id
            )
        except (AuthenticationError, ConfigurationError):
            raise
        except DokuError as exc:
            report.errors += 1
            if len(report.failures) < _KEPT:
                report.failures.append((reference, str(exc)))
            log.warning("reconcile: check status for %s failed: %s", reference, exc)
            continue
        report.checked += 1
        if status.transaction_status == TransactionStatus.NOT_FOUND:
            report.not_found += 1
        state, code, message = news_of(entry, status)
        if journal.apply(
            reference,
            state,
            source="reconcile",
            code=code,
            message=message,
            reference_no=status.original_reference_no,
        ):
            change = ReconcileChange(reference, entry.state, state, code, message)
            report.changed += 1
            if len(report.changes) < _KEPT:
                report.changes.append(change)
            if on_change is not None:
                on_change(change)


def news_of(entry: JournalEntry, status: CheckStatusResponse) -> tuple[str, str, str]:
    """The state, code and message check status gives a journaled item."""
    code = status.transaction_status
    current = entry.state
    if code == TransactionStatus.NOT_FOUND:
        if current == "sending":
            return (
                "retry",
                code,
                "not found at DOKU (07): the transfer never reached it, nothing was paid; "
                "'payouts resume' pays it",
            )
        return current, code, f"check status does not find it (07); still {current}"
    state = PayoutState.from_check_status(code)
    if state is None:
        return PayoutState.UNKNOWN, code, f"undocumented status {code!r}"
    desc = status.transaction_status_desc or status.status_description
    reported = status.amount.value if status.amount is not None else None
    if reported is not None and reported != entry.item.amount:
        desc += f"; DOKU reports amount {reported}, planned {entry.item.amount}: reconcile it"
    return state, code, desc
