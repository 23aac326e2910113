"""Shared helpers of the reliability suite: payout batches with DOKU's sandbox magic values,
fault schedules fired from the runner's progress callback, and the ledger, journal and money
checks every fault scenario ends with.

The simulator's ledger is the ground truth: ``sim.commits`` counts how many times each
``partnerReferenceNo`` was committed, ``sim.transfers`` holds each committed transfer with its
latest status, and ``sim.balance()`` falls by each payout (and rises again by each one DOKU
fails and refunds).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from helpers import no_sleep

from doku_async import Clocks, RetryPolicy, Timeouts
from doku_async.bulk import BulkProgress, ItemResult, JournalBackend, PayoutItem, payout_item
from doku_async.models.kirim import TransactionStatus
from doku_async.testing import DokuSimulator

__all__ = [
    "CUSTOMER",
    "FIRST_RUN_STATUSES",
    "Batch",
    "Schedule",
    "assert_false_duplicates_not_believed",
    "assert_first_run_results",
    "assert_journal_matches_ledger",
    "assert_never_paid_twice",
    "assert_resends_keep_the_reference",
    "assert_settled",
    "client_options",
    "closed_port",
    "make_batch",
    "no_sleep",
    "paid_twice",
    "spread",
    "unsettled",
]

CUSTOMER = "628115678890"
FIRST_RUN_STATUSES = frozenset({"succeeded", "accepted", "failed", "pending", "unknown"})
"""What a first run over a fresh journal may report (``skipped`` needs an earlier run)."""
OPEN_STATES = frozenset({"sending", "unknown", "accepted", "pending"})
"""Journal states of an item whose transfer may have been sent but is not settled."""
NOT_SENT_STATES = frozenset({"planned", "retry"})
"""Journal states that promise nothing was paid."""


def client_options(**overrides: Any) -> dict[str, Any]:
    """Client keyword arguments: instant backoff, no jitter, short timeouts (``overrides`` win).

    The attempt timeout (0.25 s) is shorter than the hang of every timeout fault (0.4 s).
    """
    options: dict[str, Any] = {
        "clocks": Clocks(sleep=no_sleep),
        "retry": RetryPolicy(jitter=False),
        "timeouts": Timeouts(connect=0.5, attempt=0.25, total=5.0),
    }
    options.update(overrides)
    return options


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ----------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class Batch:
    """Payout items and what DOKU (the simulator) will finally make of each.

    ``unpaid_success`` items go UNPAID (``03``) then SUCCESS; ``unpaid_failed`` items go UNPAID
    then FAILED (``06``, refunded): every other item is paid at once.
    """

    items: list[PayoutItem]
    unpaid_success: frozenset[str]
    unpaid_failed: frozenset[str]

    @property
    def references(self) -> set[str]:
        return {item.reference for item in self.items}

    @property
    def expected_failed(self) -> frozenset[str]:
        """References DOKU itself fails: they end ``failed``, never ``succeeded``."""
        return self.unpaid_failed

    def amount_of(self, reference: str) -> Decimal:
        return next(item.amount for item in self.items if item.reference == reference)


def make_batch(n: int, tag: str, *, unpaid_failed: bool = True) -> Batch:
    """``n`` items under references ``{tag}-0000``...; every 17th goes UNPAID then SUCCESS and,
    with ``unpaid_failed``, every 29th UNPAID then FAILED (sandbox magic values: an account
    number containing ``12345``; bank ``002`` fails). Amounts carry cents and all differ."""
    items: list[PayoutItem] = []
    success: set[str] = set()
    failed: set[str] = set()
    banks = ("014", "008", "009", "451")
    for i in range(n):
        reference = f"{tag}-{i:04d}"
        amount = f"{10_000 + 137 * i}.{i % 100:02d}"
        if i % 17 == 3:
            bank, account = "014", f"99{i:04d}12345"
            success.add(reference)
        elif unpaid_failed and i % 29 == 11:
            bank, account = "002", f"98{i:04d}12345"
            failed.add(reference)
        else:
            bank, account = banks[i % len(banks)], f"8{i:09d}"
        items.append(
            payout_item(
                reference=reference,
                bank_code=bank,
                account_number=account,
                account_name=f"DRIVER {i}",
                amount=amount,
                remark="reliability",
                line=i + 2,
            )
        )
    return Batch(items, frozenset(success), frozenset(failed))


# ----------------------------------------------------------------------------- schedules


def spread(n: int, parts: int) -> list[int]:
    """``parts`` trigger points through a run of ``n`` items: 0, n/parts, 2n/parts..."""
    return [n * k // parts for k in range(parts)]


@dataclass
class Schedule:
    """Actions fired once each from the progress callback, when ``done`` reaches their mark.

    Call :meth:`start` before the run for the actions marked 0 (the callback only runs after
    the first result).
    """

    steps: list[tuple[int, Callable[[], None]]] = field(default_factory=list)
    fired: list[int] = field(default_factory=list)
    _next: int = 0

    def at(self, done: int, action: Callable[[], None]) -> Schedule:
        self.steps.append((done, action))
        self.steps.sort(key=lambda step: step[0])
        return self

    def start(self) -> None:
        self._fire(0)

    def __call__(self, progress: BulkProgress) -> None:
        self._fire(progress.done)

    def _fire(self, done: int) -> None:
        while self._next < len(self.steps) and self.steps[self._next][0] <= done:
            mark, action = self.steps[self._next]
            self._next += 1
            self.fired.append(mark)
            action()

    @property
    def complete(self) -> bool:
        return self._next == len(self.steps)


# ----------------------------------------------------------------------------- checks


def paid_twice(sim: DokuSimulator, references: Iterable[str]) -> int:
    """How many references the simulator committed more than once."""
    every = set(references) | set(sim.commits)
    return sum(1 for ref in every if sim.transfer_count(ref) > 1)


def assert_never_paid_twice(sim: DokuSimulator, batch: Batch) -> None:
    """No reference committed twice; the ledger holds exactly the committed references, and
    only references of the batch."""
    assert paid_twice(sim, batch.references) == 0
    for ref in batch.references:
        assert sim.transfer_count(ref) <= 1, ref
    committed = {ref for ref, count in sim.commits.items() if count >= 1}
    assert len(sim.transfers) == len(committed)
    assert set(sim.transfers) == committed
    assert committed <= batch.references, committed - batch.references


def transfer_sends(sim: DokuSimulator) -> dict[str, list[tuple[dict[str, Any], str, str]]]:
    """(body without its inquiry ``sessionId``, ``X-EXTERNAL-ID``, response code) of every
    ``transfer_bank`` request the simulator received, per ``partnerReferenceNo``, in
    arrival order."""
    sends: dict[str, list[tuple[dict[str, Any], str, str]]] = {}
    for request in sim.requests_for("transfer_bank"):
        body = json.loads(request.body)
        body.pop("sessionId", None)  # a resumed item makes a new inquiry
        headers = {k.lower(): v for k, v in request.headers.items()}
        sends.setdefault(body["partnerReferenceNo"], []).append(
            (body, headers["x-external-id"], request.response_code)
        )
    return sends


def assert_resends_keep_the_reference(sim: DokuSimulator) -> None:
    """Every send of a reference, resends and resumed sends included, carried the same
    ``partnerReferenceNo`` (DOKU's idempotency key), amount and beneficiary, each under an
    ``X-EXTERNAL-ID`` of its own: never re-sent under a new reference, and never under an
    ``X-EXTERNAL-ID`` DOKU already saw (it refuses a reused one with 409xx00; issue 12,
    finding 9). The one exception is the re-signed send after DOKU refused the access token
    (``401xx01``/``401xx03``): refused at authentication, that request was never processed."""
    for reference, sends in transfer_sends(sim).items():
        assert all(body == sends[0][0] for body, _, _ in sends), reference
        for (_, before, code), (_, after, _) in itertools.pairwise(sends):
            token_refused = code[:3] == "401" and code[5:] in ("01", "03")
            assert before != after or token_refused, (reference, [s[1:] for s in sends])
        seen = [external_id for _, external_id, _ in sends]
        assert len(set(seen)) >= len(seen) - sum(1 for _, _, code in sends if code[:3] == "401"), (
            reference,
            seen,
        )


def assert_false_duplicates_not_believed(sim: DokuSimulator, results: Iterable[ItemResult]) -> int:
    """Transfers answered 409 that DOKU never committed (a false "duplicate"): the SDK asked
    check status instead of taking the 409 for "already paid", and the item ended paid once by
    the one resend "not found" allows (the ledger has it), or unknown with nothing paid.
    Returns how many references were answered 409."""
    by_ref = {result.reference: result for result in results}
    answered_409: dict[str, int] = {}
    for index, request in enumerate(sim.requests):
        if request.operation == "transfer_bank" and request.status == 409:
            answered_409.setdefault(json.loads(request.body)["partnerReferenceNo"], index)
    for reference, first in answered_409.items():
        asked_after = [
            i
            for i, request in enumerate(sim.requests)
            if i > first
            and request.operation == "check_status"
            and json.loads(request.body)["originalPartnerReferenceNo"] == reference
        ]
        assert asked_after, f"{reference}: a 409 was taken for an answer"
        sends = [
            r
            for r in sim.requests_for("transfer_bank")
            if json.loads(r.body)["partnerReferenceNo"] == reference
        ]
        status = by_ref[reference].status
        if any(r.status == 200 for r in sends):
            assert sim.transfer_count(reference) == 1, reference
            assert status in ("succeeded", "failed", "pending"), (reference, status)
        else:
            assert sim.transfer_count(reference) == 0, reference
            assert status == "unknown", (reference, status)
    return len(answered_409)


def assert_first_run_results(results: list[ItemResult]) -> None:
    """Every result is succeeded/failed/pending/unknown, and every unknown (or pending) carries
    the ``external_id`` it was sent with, so that it can be settled."""
    for result in results:
        assert result.status in FIRST_RUN_STATUSES, result
        if result.status in ("unknown", "accepted", "pending"):
            assert result.external_id, result
            assert result.external_id.isdigit(), result


def assert_journal_matches_ledger(
    journal: JournalBackend, sim: DokuSimulator, batch: Batch
) -> None:
    """The journal never claims more than the ledger shows.

    ``succeeded``: committed once, for that amount, and DOKU says success. ``failed``: never
    committed, or DOKU failed it. ``planned``/``retry`` (or absent): never committed.
    ``sending``/``unknown``/``pending``: anything, but with the ``external_id`` to settle it.
    """
    entries = {entry.item.reference: entry for entry in journal.entries()}
    assert set(entries) <= batch.references
    for item in batch.items:
        entry = entries.get(item.reference)
        transfer = sim.transfers.get(item.reference)
        state = None if entry is None else entry.state
        where = f"{item.reference}: journal {state}, ledger {transfer}"
        if state == "succeeded":
            assert transfer is not None, where
            assert transfer.status == TransactionStatus.SUCCESS, where
            assert transfer.amount == item.amount, where
        elif state == "failed":
            assert transfer is None or transfer.status in TransactionStatus.UNSUCCESSFUL, where
        elif state is None or state in NOT_SENT_STATES:
            assert transfer is None, where
        else:
            assert state in OPEN_STATES, where
            assert entry is not None
            assert entry.external_id, where


def unsettled(journal: JournalBackend) -> int:
    """Items whose transfer may have been sent and is not settled yet."""
    counts = journal.counts()
    return sum(counts.get(state, 0) for state in OPEN_STATES)


def assert_settled(
    journal: JournalBackend, sim: DokuSimulator, batch: Batch, balance_before: Decimal
) -> None:
    """After a resume with DOKU healthy again: every item paid exactly once or definitely
    failed, as DOKU decided; the money moved is exactly the sum of the succeeded items."""
    entries = {entry.item.reference: entry for entry in journal.entries()}
    assert set(entries) == batch.references
    states = {ref: entry.state for ref, entry in entries.items()}
    assert set(states.values()) <= {"succeeded", "failed"}, journal.counts()
    for item in batch.items:
        ref = item.reference
        if ref in batch.expected_failed:
            assert states[ref] == "failed", ref
            assert sim.transfers[ref].status in TransactionStatus.UNSUCCESSFUL, ref
        else:
            assert states[ref] == "succeeded", (ref, entries[ref].message)
        if states[ref] == "succeeded":
            assert sim.transfer_count(ref) == 1, ref
    assert_journal_matches_ledger(journal, sim, batch)
    assert_never_paid_twice(sim, batch)
    paid = sum((e.item.amount for e in entries.values() if e.state == "succeeded"), Decimal("0.00"))
    assert balance_before - sim.balance() == paid
    ledger_paid = sum(
        (t.amount for t in sim.transfers.values() if t.status == TransactionStatus.SUCCESS),
        Decimal("0.00"),
    )
    assert ledger_paid == paid


async def settle_simulator(sim: DokuSimulator) -> None:
    """Let delayed commits and UNPAID -> final transitions of the simulator finish."""
    async with asyncio.timeout(10):
        await sim.drain()


class Stopwatch:
    """Elapsed seconds, rounded for the figures."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self._started = now - self._started, now
        return round(elapsed, 3)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as stable, readable JSON."""
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
