"""The fault matrix: a bulk payout of a few hundred items through the simulator under every
kind of failure DOKU or the network can produce, then a resume once DOKU is healthy again.

For every fault the proof is the same, read from the simulator's ledger:

* during the faulty run: no reference is ever committed twice, every result is
  succeeded/failed/pending/unknown, every unknown carries the ``external_id`` it was sent with,
  and the journal never claims more than the ledger shows;
* after a resume with a new runner over the same journal and the same items: zero unknown,
  zero pending, every item paid exactly once or definitely failed (as DOKU decided), and the
  money that left the balance is exactly the sum of the succeeded items.

Faults are injected for a bounded number of calls, in batches fired from the progress callback
at 0, 1/3 and 2/3 of the run, so they hit the start, the middle and the end. Each scenario's
figures are written to ``tests/reliability/last_run.json`` (a generated artifact) for the README.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _matrix import (
    CUSTOMER,
    Batch,
    Schedule,
    Stopwatch,
    assert_false_duplicates_not_believed,
    assert_first_run_results,
    assert_journal_matches_ledger,
    assert_never_paid_twice,
    assert_resends_keep_the_reference,
    assert_settled,
    client_options,
    closed_port,
    make_batch,
    paid_twice,
    settle_simulator,
    spread,
    unsettled,
    write_json,
)
from cli_process import (
    KILL_DURING_PLAN,
    cli,
    finish,
    kill,
    killed_on_exit,
    read_results,
    sim_env,
    start,
    start_python,
    transfer_refs,
    write_items,
)
from helpers import committed_states, wait_until

from doku_async import AuthenticationError, DokuClient
from doku_async.bulk import BulkRunner, ItemResult, Journal, RateLimiter, payout_item
from doku_async.testing import DokuSimulator, FaultKind, SimulatorCredentials

pytestmark = pytest.mark.timeout(60)

ITEMS = 240
"""Items per scenario."""
CONCURRENCY = 16
PARTS = 3
"""Fault batches per scenario: fired at 0, 1/3 and 2/3 of the run."""
TIMEOUT = 30.0
"""Bound on one scenario (both runs)."""
HANG = 0.4
"""How long a timeout fault holds the request: longer than the client's 0.25 s attempt."""

FIGURES: dict[str, dict[str, Any]] = {}
"""Per-scenario figures, written to ``last_run.json`` when the module finishes."""
LAST_RUN = Path(__file__).with_name("last_run.json")


@pytest.fixture(scope="module", autouse=True)
def write_figures() -> Iterator[None]:
    """Write the figures of the scenarios that ran, whatever their order or selection."""
    FIGURES.clear()
    yield
    if not FIGURES:
        return
    scenarios = dict(sorted(FIGURES.items()))
    verified = [f for f in scenarios.values() if f.get("verified")]
    write_json(
        LAST_RUN,
        {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "aiohttp": aiohttp.__version__,
            "items_per_scenario": ITEMS,
            "concurrency": CONCURRENCY,
            "scenarios": scenarios,
            "totals": {
                "scenarios": len(scenarios),
                "verified": len(verified),
                "items": sum(f["items"] for f in scenarios.values()),
                "faults_injected": sum(f["faults_injected"] for f in scenarios.values()),
                "unknowns_before_resume": sum(
                    f["unknowns_before_resume"] for f in scenarios.values()
                ),
                "unknowns_after_resume": sum(
                    f.get("unknowns_after_resume", 0) for f in scenarios.values()
                ),
                "paid_twice": sum(f.get("paid_twice", 0) for f in scenarios.values()),
            },
        },
    )


# ----------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Injection:
    """``times`` calls of ``op`` suffer ``kind`` (spread over :data:`PARTS` batches)."""

    op: str
    kind: FaultKind
    times: int = 30
    status: int = 500
    response_code: str = ""
    retry_after: str | None = None
    delay: float = 0.0

    def inject(self, sim: DokuSimulator, times: int) -> None:
        sim.inject(
            self.op,
            self.kind,
            times=times,
            status=self.status,
            response_code=self.response_code,
            retry_after=self.retry_after,
            delay=self.delay,
        )


@dataclass(frozen=True)
class Scenario:
    name: str
    describe: str
    injections: tuple[Injection, ...]
    unpaid_failed: bool = True
    """Include items DOKU fails after UNPAID. Off where check status itself is faulted: see
    :func:`test_unconfirmed_transfer_is_not_reported_as_succeeded` (a known defect would make
    those scenarios flaky instead of failing them)."""
    rate: float | None = None
    wait_for_final: bool = True
    """The first run polls check status until each transfer is final (the resume always
    does)."""
    false_duplicate: bool = False
    """The 409 is a lie (nothing was committed): prove the SDK did not believe it."""


def _transfer(kind: FaultKind, **kwargs: Any) -> tuple[Injection, ...]:
    return (Injection("transfer_bank", kind, **kwargs),)


SCENARIOS: list[Scenario] = [
    Scenario(
        "timeout-before-commit",
        f"transfer_bank held {HANG}s then dropped, never committed (client attempt 0.25s)",
        _transfer("drop_before_commit", delay=HANG),
    ),
    Scenario(
        "timeout-after-commit",
        f"transfer_bank committed, answer held {HANG}s (client attempt 0.25s)",
        _transfer("hang_after_commit", delay=HANG),
    ),
    Scenario(
        "dropped-before-commit",
        "transfer_bank connection closed unanswered, never committed",
        _transfer("drop_before_commit"),
    ),
    Scenario(
        "dropped-after-commit",
        "transfer_bank committed, then the connection closed unanswered",
        _transfer("drop_after_commit"),
    ),
    *(
        Scenario(
            f"transfer-{status}",
            f"transfer_bank answered HTTP {status} ({status}4300), not committed",
            _transfer("error", status=status),
        )
        for status in (500, 502, 504)
    ),
    *(
        Scenario(
            f"transfer-{status}-after-commit",
            f"transfer_bank committed, then answered HTTP {status}",
            _transfer("error_after_commit", status=status),
        )
        for status in (500, 502, 504)
    ),
    *(
        Scenario(
            f"account-inquiry-{status}",
            f"account_inquiry answered HTTP {status}",
            (Injection("account_inquiry", "error", status=status, times=90),),
        )
        for status in (500, 502, 504)
    ),
    *(
        Scenario(
            f"check-status-{status}",
            f"check_status answered HTTP {status} (runner waits for final statuses)",
            (Injection("check_status", "error", status=status, times=45),),
            unpaid_failed=False,
        )
        for status in (500, 502, 504)
    ),
    Scenario(
        "settlement-blind",
        "transfer_bank committed then dropped while check_status answers 500 to each of the "
        "SDK's 4 settlement attempts: the outcome stays unknown until the resume",
        (
            Injection("transfer_bank", "drop_after_commit", times=15),
            Injection("check_status", "error", status=500, times=60),
        ),
        unpaid_failed=False,
        wait_for_final=False,  # check status is then only asked to settle the dropped ones
    ),
    Scenario(
        "in-progress-202",
        "transfer_bank committed, then answered 202 (2024300, in progress)",
        _transfer("error_after_commit", status=202, response_code="2024300"),
    ),
    Scenario(
        "rate-limited-429",
        "transfer_bank answered 429 with Retry-After: 0 (runner rate 1000/s)",
        _transfer("error", status=429, retry_after="0"),
        rate=1000.0,
    ),
    *(
        Scenario(
            f"duplicate-{code}",
            f"transfer_bank answered 409 {code} without committing (a false duplicate)",
            _transfer("error", status=409, response_code=code),
            false_duplicate=True,
        )
        for code in ("4094300", "4094301", "4094302")
    ),
]


# ----------------------------------------------------------------------------- runs


async def run_pass(
    doku: DokuClient,
    batch: Batch,
    journal: Journal,
    *,
    progress: Schedule | None = None,
    rate: float | None = None,
    wait_for_final: bool = True,
) -> tuple[list[ItemResult], BulkRunner]:
    """One run over ``batch`` with a fresh runner; its results in completion order."""
    runner = BulkRunner(
        doku,
        customer_number=CUSTOMER,
        concurrency=CONCURRENCY,
        rate=rate,
        journal=journal,
        wait_for_final=wait_for_final,
        final_timeout=10.0,
        poll_interval=0.01,
        progress=progress,
    )
    results: list[ItemResult] = []
    await runner.run(batch.items, on_result=results.append)
    return results, runner


def first_run_figures(
    name: str,
    describe: str,
    faults: int,
    results: list[ItemResult],
    journal: Journal,
    seconds: float,
) -> dict[str, Any]:
    statuses = Counter(r.status for r in results)
    figures: dict[str, Any] = {
        "fault": describe,
        "items": ITEMS,
        "faults_injected": faults,
        "first_run": {
            "results": len(results),
            "succeeded": statuses["succeeded"],
            "failed": statuses["failed"],
            "failed_retryable": sum(1 for r in results if r.status == "failed" and r.retryable),
            "pending": statuses["pending"],
            "unknown": statuses["unknown"],
            "seconds": seconds,
        },
        "unknowns_before_resume": statuses["unknown"],
        "unsettled_in_journal_before_resume": unsettled(journal),
        "verified": False,
    }
    FIGURES[name] = figures
    return figures


async def resume_and_prove(
    sim: DokuSimulator,
    batch: Batch,
    path: Path,
    balance_before: Decimal,
    figures: dict[str, Any],
    **client_overrides: Any,
) -> list[ItemResult]:
    """DOKU healthy again: resume with a new client and runner over the journal on disk, then
    prove every item settled exactly once and the money adds up."""
    sim.faults.clear()
    await settle_simulator(sim)
    watch = Stopwatch()
    with closing(Journal(path)) as journal:
        async with sim.client(**client_options(**client_overrides)) as doku:
            results, _ = await run_pass(doku, batch, journal)
        await settle_simulator(sim)
        statuses = Counter(r.status for r in results)
        figures.update(
            resume={
                "seconds": watch.lap(),
                "skipped": statuses["skipped"],
                "succeeded": statuses["succeeded"],
                "failed": statuses["failed"],
            },
            unknowns_after_resume=statuses["unknown"],
            pending_after_resume=statuses["pending"],
            paid_twice=paid_twice(sim, batch.references),
            transfer_requests=len(sim.requests_for("transfer_bank")),
            check_status_requests=len(sim.requests_for("check_status")),
        )
        assert len(results) == ITEMS
        assert set(statuses) <= {"succeeded", "failed", "skipped"}, statuses
        assert statuses["unknown"] == 0
        assert statuses["pending"] == 0
        assert_settled(journal, sim, batch, balance_before)
        assert_resends_keep_the_reference(sim)
        counts = journal.counts()
        figures.update(
            succeeded=counts.get("succeeded", 0),
            failed=counts.get("failed", 0),
            money_moved=str(balance_before - sim.balance()),
            verified=True,
        )
    return results


def check_first_run(
    sim: DokuSimulator, batch: Batch, journal: Journal, results: list[ItemResult]
) -> None:
    assert_first_run_results(results)
    assert len({r.reference for r in results}) == len(results)
    assert {r.reference for r in results} <= batch.references
    assert_never_paid_twice(sim, batch)
    assert_journal_matches_ledger(journal, sim, batch)
    assert_resends_keep_the_reference(sim)
    for result in results:
        entry = journal.get(result.reference)
        assert entry is not None
        if result.status in ("unknown", "pending"):
            assert entry.external_id == result.external_id
        if result.status == "failed" and result.retryable:
            assert sim.transfer_count(result.reference) == 0  # a retryable failure paid nothing


# ----------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_fault_then_resume(scenario: Scenario, sim: DokuSimulator, tmp_path: Path) -> None:
    batch = make_batch(ITEMS, scenario.name.upper(), unpaid_failed=scenario.unpaid_failed)
    path = tmp_path / "run.db"
    balance_before = sim.balance()
    schedule = Schedule()
    injected = 0
    for injection in scenario.injections:
        per_batch = injection.times // PARTS
        injected += per_batch * PARTS
        for mark in spread(ITEMS, PARTS):
            schedule.at(mark, partial(injection.inject, sim, per_batch))

    async with asyncio.timeout(TIMEOUT):
        watch = Stopwatch()
        with closing(Journal(path)) as journal:
            async with sim.client(**client_options()) as doku:
                schedule.start()
                results, runner = await run_pass(
                    doku,
                    batch,
                    journal,
                    progress=schedule,
                    rate=scenario.rate,
                    wait_for_final=scenario.wait_for_final,
                )
            seconds = watch.lap()
            assert schedule.complete
            for injection in scenario.injections:  # every injected fault was met
                assert sim.faults.pending(injection.op) == 0, injection
            await settle_simulator(sim)
            figures = first_run_figures(
                scenario.name, scenario.describe, injected, results, journal, seconds
            )
            if scenario.rate is not None:
                figures["throttled"] = runner.limiter.throttled
            assert len(results) == ITEMS
            check_first_run(sim, batch, journal, results)
            if scenario.false_duplicate:
                figures["answered_409"] = assert_false_duplicates_not_believed(sim, results)
        await resume_and_prove(sim, batch, path, balance_before, figures)


async def test_connection_refused_then_resume(sim: DokuSimulator, tmp_path: Path) -> None:
    """The first run points at a closed loopback port: nothing reaches DOKU, every item is a
    retryable failure; the resume against the running simulator pays everything once."""
    batch = make_batch(ITEMS, "REFUSED")
    path = tmp_path / "run.db"
    balance_before = sim.balance()
    dead = f"http://127.0.0.1:{closed_port()}"
    async with asyncio.timeout(TIMEOUT):
        watch = Stopwatch()
        with closing(Journal(path)) as journal:
            async with sim.client(**client_options(base_url=dead)) as doku:
                results, _ = await run_pass(doku, batch, journal)
            figures = first_run_figures(
                "connection-refused",
                "first run against a closed loopback port; resume against the simulator",
                ITEMS,
                results,
                journal,
                watch.lap(),
            )
            assert len(results) == ITEMS
            check_first_run(sim, batch, journal, results)
            assert {r.status for r in results} == {"failed"}
            assert all(r.retryable for r in results)
            assert journal.counts() == {"retry": ITEMS}
            assert sim.requests == []
        await resume_and_prove(sim, batch, path, balance_before, figures)


async def test_token_expired_mid_run(sim: DokuSimulator, tmp_path: Path) -> None:
    """Every issued token is revoked after a third of the items: calls in flight get
    ``401xx01``, the client fetches one new token and re-signs; no item is lost to it."""
    batch = make_batch(ITEMS, "EXPIRED")
    path = tmp_path / "run.db"
    balance_before = sim.balance()
    schedule = Schedule().at(ITEMS // 3, sim.expire_tokens)
    async with asyncio.timeout(TIMEOUT):
        watch = Stopwatch()
        with closing(Journal(path)) as journal:
            async with sim.client(**client_options()) as doku:
                results, _ = await run_pass(doku, batch, journal, progress=schedule)
                fetches = doku.token_fetches
            rejected = [r for r in sim.requests if r.status == 401]
            await settle_simulator(sim)
            figures = first_run_figures(
                "token-expired-mid-run",
                "every token revoked (401xx01) after a third of the items",
                len(rejected),
                results,
                journal,
                watch.lap(),
            )
            figures["token_fetches"] = fetches
            assert schedule.complete
            check_first_run(sim, batch, journal, results)
            assert rejected, "the revocation hit no call"
            assert {r.response_code[5:] for r in rejected} == {"01"}
            assert fetches == 2 == sim.token_requests
            expected = {
                i.reference: "failed" if i.reference in batch.expected_failed else "succeeded"
                for i in batch.items
            }
            assert {r.reference: r.status for r in results} == expected
        await resume_and_prove(sim, batch, path, balance_before, figures)


async def test_token_lifetime_shorter_than_the_run(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    """Tokens live 1 s, the client refreshes 0.2 s ahead, the run lasts more than 2 s: the
    token is renewed ahead of expiry, again and again, without losing an item."""
    batch = make_batch(ITEMS, "TTL")
    path = tmp_path / "run.db"
    async with (
        asyncio.timeout(TIMEOUT),
        DokuSimulator(credentials=creds, token_ttl=1.0) as sim,
    ):
        balance_before = sim.balance()
        watch = Stopwatch()
        with closing(Journal(path)) as journal:
            async with sim.client(**client_options(token_refresh_margin=0.2)) as doku:
                results, _ = await run_pass(doku, batch, journal, rate=300.0)
                fetches = doku.token_fetches
            seconds = watch.lap()
            rejected = [r for r in sim.requests if r.status == 401]
            await settle_simulator(sim)
            figures = first_run_figures(
                "token-lifetime-1s",
                "tokens live 1 s, refreshed 0.2 s ahead, over a run paced to last > 2 s",
                fetches - 1,
                results,
                journal,
                seconds,
            )
            figures.update(token_fetches=fetches, rejected_401=len(rejected))
            assert seconds > 2.0
            check_first_run(sim, batch, journal, results)
            assert fetches >= 3
            assert fetches == sim.token_requests
            expected = {
                i.reference: "failed" if i.reference in batch.expected_failed else "succeeded"
                for i in batch.items
            }
            assert {r.reference: r.status for r in results} == expected
        await resume_and_prove(sim, batch, path, balance_before, figures, token_refresh_margin=0.2)


async def test_clock_skew_mid_run_stops_the_run_then_resume(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    """The simulator's clock jumps an hour after a third of the items: every signed request is
    now out of range (``401xx00``). Rejected credentials stop the run (by design: every item
    would fail), the journal stays consistent, and once the clocks agree a resume finishes."""
    batch = make_batch(ITEMS, "SKEW", unpaid_failed=False)
    path = tmp_path / "run.db"
    balance_before = sim.balance()
    schedule = Schedule().at(ITEMS // 3, lambda: sim.skew_clock(3600))
    async with asyncio.timeout(TIMEOUT):
        watch = Stopwatch()
        with closing(Journal(path)) as journal:
            results: list[ItemResult] = []
            async with sim.client(**client_options()) as doku:
                runner = BulkRunner(
                    doku,
                    customer_number=CUSTOMER,
                    concurrency=CONCURRENCY,
                    journal=journal,
                    wait_for_final=True,
                    final_timeout=10.0,
                    poll_interval=0.01,
                    progress=schedule,
                )
                with pytest.raises(AuthenticationError) as raised:
                    await runner.run(batch.items, on_result=results.append)
            rejected = [r for r in sim.requests if r.status == 401]
            await settle_simulator(sim)
            figures = first_run_figures(
                "clock-skew-1h",
                "simulator clock moved 3600 s after a third of the items; run stops on 401xx00",
                len(rejected),
                results,
                journal,
                watch.lap(),
            )
            assert raised.value.response_code[:3] == "401"
            assert schedule.complete
            assert ITEMS // 3 <= len(results) < ITEMS
            assert rejected
            assert {r.response_code[5:] for r in rejected} == {"00"}
            check_first_run(sim, batch, journal, results)
            # Nothing journaled as paid unless the ledger has it; items not reached are absent.
            assert sum(journal.counts().values()) < ITEMS
        sim.skew_clock(0)
        await resume_and_prove(sim, batch, path, balance_before, figures)


# ----------------------------------------------------------------------------- defects


async def test_unconfirmed_transfer_is_not_reported_as_succeeded(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    # Bank 002 and an account containing 12345: DOKU accepts (2004300), shows UNPAID ("03"),
    # then fails the transfer and refunds it.
    item = payout_item(
        reference="UNCONFIRMED-1",
        bank_code="002",
        account_number="9812345001",
        account_name="SARI DEWI",
        amount="150000.00",
    )
    sim.inject("check_status", "error", status=500, times=4)  # the SDK's 4 read attempts
    async with asyncio.timeout(TIMEOUT):
        with closing(Journal(tmp_path / "run.db")) as journal:
            async with sim.client(**client_options()) as doku:
                runner = BulkRunner(
                    doku,
                    customer_number=CUSTOMER,
                    concurrency=1,
                    journal=journal,
                    wait_for_final=True,
                    poll_interval=0.01,
                )
                results: list[ItemResult] = []
                await runner.run([item], on_result=results.append)
            await settle_simulator(sim)
            assert sim.transfers[item.reference].status == "06"  # DOKU failed it, refunded
            assert sim.balance() == Decimal("1000000000.00")
            entry = journal.get(item.reference)
            assert entry is not None
            # Accepted (2004300), and DOKU's confirmation could not be had: "accepted", never
            # "succeeded" (which would make a resume skip it: the payee never paid).
            assert results[0].status == "accepted"
            assert entry.state == "accepted"


async def test_early_429_without_a_rate_keeps_half_the_observed_rate() -> None:
    now = 1000.0

    def clock() -> float:
        return now

    async def sleep(seconds: float) -> None:
        nonlocal now
        now += seconds

    limiter = RateLimiter(None, clock=clock, sleep=sleep)
    for _ in range(200):  # 2,000 requests/s for the first 0.1 s of a run
        await limiter.acquire()
        now += 0.0005
    limiter.throttle(0.0)
    assert limiter.rate is not None
    # Half the observed 2,000/s is 1,000/s; what happens: 100/s.
    assert limiter.rate >= 500


async def test_rejected_credentials_stop_the_run_while_polling(
    creds: SimulatorCredentials,
) -> None:
    item = payout_item(
        reference="POLLING-1",
        bank_code="014",
        account_number="9912345001",  # UNPAID ("03") until the notification, 5 s later
        account_name="BUDI SANTOSO",
        amount="50000.00",
    )
    async with (
        asyncio.timeout(TIMEOUT),
        DokuSimulator(credentials=creds, notification_delay=5.0) as sim,
        sim.client(**client_options()) as doku,
    ):

        async def skew_while_polling() -> None:  # from the second status poll on
            while len(sim.requests_for("check_status")) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            sim.skew_clock(3600)

        skewer = asyncio.create_task(skew_while_polling())
        runner = BulkRunner(
            doku,
            customer_number=CUSTOMER,
            concurrency=1,
            wait_for_final=True,
            poll_interval=0.02,
            final_timeout=1.0,
        )
        try:
            # What happens: ~40 polls answered 401xx00, then the item is reported "pending".
            with pytest.raises(AuthenticationError):
                await runner.run([item])
        finally:
            skewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await skewer


# ----------------------------------------------------------------------------- the journal


def payees_skipped(sim: DokuSimulator, batch: Batch) -> int:
    """Payees no transfer ever reached DOKU for (every item of a batch must be sent once)."""
    return sum(1 for ref in batch.references if sim.transfer_count(ref) == 0)


def journal_figures(name: str, describe: str, **figures: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "fault": describe,
        "items": ITEMS,
        "faults_injected": 1,
        "unknowns_before_resume": 0,
        "unknowns_after_resume": 0,
        "verified": False,
        **figures,
    }
    FIGURES[name] = entry
    return entry


def prove_settled(sim: DokuSimulator, batch: Batch, path: Path, balance_before: Decimal) -> None:
    with closing(Journal(path, lock=False)) as journal:
        assert_settled(journal, sim, batch, balance_before)
    assert payees_skipped(sim, batch) == 0


def cli_run_args(csv_path: Path, db: Path, *extra: str) -> tuple[str, ...]:
    return (
        "payouts", "run", str(csv_path), "--journal", str(db), "--concurrency", str(CONCURRENCY),
        "--wait-final", "--poll-interval", "0.05", *extra,
    )  # fmt: skip


def expected_exit(batch: Batch) -> int:
    """The CLI's exit code once settled: 1 when DOKU failed some items, else 0."""
    return 1 if batch.expected_failed else 0


async def test_lost_journal_then_rerun_pays_nobody_twice(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    """A run completes; its journal is deleted; the same items run again over a new journal.
    Every transfer is refused by DOKU's uniqueness check (409), check status finds it, and the
    item is reported paid before this run, not paid again and not paid by this run."""
    batch = make_batch(ITEMS, "LOSTJ")
    path = tmp_path / "run.db"
    balance_before = sim.balance()
    async with asyncio.timeout(TIMEOUT):
        watch = Stopwatch()
        with closing(Journal(path)) as journal:
            async with sim.client(**client_options()) as doku:
                await run_pass(doku, batch, journal)
        await settle_simulator(sim)
        for suffix in ("", "-wal", "-shm", ".lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240 - test setup
        with closing(Journal(path)) as journal:
            async with sim.client(**client_options()) as doku:
                results, runner = await run_pass(doku, batch, journal)
        await settle_simulator(sim)
        statuses = Counter(r.status for r in results)
        already = sum(1 for r in results if r.already_paid)
        figures = journal_figures(
            "journal-lost",
            "the journal deleted after a complete run; the same items run over a new journal",
            first_run={"results": ITEMS},
            resume={"seconds": watch.lap(), **statuses, "already_paid": already},
            paid_twice=paid_twice(sim, batch.references),
            payees_skipped=payees_skipped(sim, batch),
        )
        assert set(statuses) <= {"succeeded", "failed"}, statuses
        for result in results:
            if result.status == "succeeded":
                assert result.already_paid, result
            else:
                assert result.reference in batch.expected_failed, result
        assert already == ITEMS - len(batch.expected_failed)
        assert runner.summary.amount_paid == Decimal("0.00")
        prove_settled(sim, batch, path, balance_before)
        figures["verified"] = True


async def test_journal_copied_without_its_wal_then_resumed(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    """``payouts run`` is SIGKILLed two thirds in; ``run.db`` is copied alone (no ``-wal``), as
    a backup script that ignores the WAL would. The copy holds the state of the last checkpoint
    (taken a third in): it lost the records of a third of the run. Resuming from the copy pays
    nobody twice: the items it lost are found at DOKU and reported paid before this run."""
    batch = make_batch(ITEMS, "WALCOPY")
    csv_path = write_items(tmp_path / "p.csv", batch.items)
    db, copy = tmp_path / "run.db", tmp_path / "copy.db"
    balance_before = sim.balance()
    env = sim_env(sim, tmp_path)
    sim.inject("transfer_bank", "latency", delay=0.03, times=ITEMS)
    async with asyncio.timeout(TIMEOUT):
        watch = Stopwatch()
        proc = await start(*cli_run_args(csv_path, db), env=env, cwd=tmp_path)
        async with killed_on_exit(proc):
            await wait_until(lambda: len(sim.transfers) >= ITEMS // 3)
            checkpoint = sqlite3.connect(db)
            try:
                checkpoint.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                checkpoint.close()
            await wait_until(lambda: len(sim.transfers) >= 2 * ITEMS // 3)
            await kill(proc)
        copy.write_bytes(db.read_bytes())  # run.db alone, without run.db-wal
        await settle_simulator(sim)
        sim.faults.clear()
        with_wal, alone = committed_states(db), committed_states(copy)
        lost = sum(1 for ref, state in with_wal.items() if alone.get(ref) != state)
        out = tmp_path / "out.csv"
        resumed = await cli(
            "payouts", "resume", str(copy), "--out", str(out), "--wait-final",
            "--poll-interval", "0.05", env=env, cwd=tmp_path,
        )  # fmt: skip
        refused = resumed.returncode == 4
        if refused:  # the copy lacks the plan itself: the same file completes it
            assert "no record of a complete plan" in resumed.stderr, resumed
            resumed = await cli(
                *cli_run_args(csv_path, copy, "--out", str(out)), env=env, cwd=tmp_path
            )
        await settle_simulator(sim)
        rows = read_results(out)
        already = sum(1 for r in rows if r["status"] == "succeeded (already paid before this run)")
        figures = journal_figures(
            "journal-copied-without-wal",
            "run SIGKILLed 2/3 in; run.db copied without its -wal (last checkpoint 1/3 in); "
            "resumed from the copy",
            records_lost_by_the_copy=lost,
            resume={"seconds": watch.lap(), "refused_first": refused, "already_paid": already},
            paid_twice=paid_twice(sim, batch.references),
            payees_skipped=payees_skipped(sim, batch),
        )
        assert resumed.returncode == expected_exit(batch), resumed
        assert "Traceback" not in resumed.stderr
        assert lost > 0  # the copy really lost records
        assert already > 0  # ...and the resume found them paid at DOKU
        assert len(rows) == ITEMS
        prove_settled(sim, batch, copy, balance_before)
        figures["verified"] = True


async def test_killed_while_planning_then_resumed(sim: DokuSimulator, tmp_path: Path) -> None:
    """SIGKILL inside the planning transaction, half the rows written. The plan is all or
    nothing: the resume is refused (nothing sent), the same file plans and pays everyone."""
    batch = make_batch(ITEMS, "PLANKILL")
    csv_path = write_items(tmp_path / "p.csv", batch.items)
    db = tmp_path / "run.db"
    balance_before = sim.balance()
    env = sim_env(sim, tmp_path)
    async with asyncio.timeout(TIMEOUT):
        watch = Stopwatch()
        proc = await start_python(
            KILL_DURING_PLAN, str(csv_path), str(db), str(ITEMS // 2), "atomic", cwd=tmp_path
        )
        async with killed_on_exit(proc):
            killed = await finish(proc)
        assert killed.returncode == -9, killed
        planned_after_kill = len(committed_states(db))
        resumed = await cli("payouts", "resume", str(db), env=env, cwd=tmp_path)
        sent_by_resume = len(sim.requests)
        done = await cli(*cli_run_args(csv_path, db), env=env, cwd=tmp_path)
        await settle_simulator(sim)
        figures = journal_figures(
            "killed-while-planning",
            f"SIGKILL inside the plan's transaction after {ITEMS // 2} rows; resume; run again",
            planned_after_kill=planned_after_kill,
            resume={"exit": resumed.returncode, "requests": sent_by_resume},
            run_again={"exit": done.returncode, "seconds": watch.lap()},
            paid_twice=paid_twice(sim, batch.references),
            payees_skipped=payees_skipped(sim, batch),
        )
        assert planned_after_kill == 0  # all or nothing
        assert resumed.returncode == 4, resumed
        assert "no record of a complete plan" in resumed.stderr
        assert sent_by_resume == 0
        assert done.returncode == expected_exit(batch), done
        prove_settled(sim, batch, db, balance_before)
        figures["verified"] = True


async def test_two_processes_on_one_journal(sim: DokuSimulator, tmp_path: Path) -> None:
    """A double-started cron job: a second ``payouts run`` and a ``payouts resume`` over the
    journal of a live run are refused at once (exit 7, naming the holder); the first run pays
    every item once."""
    batch = make_batch(ITEMS, "TWOPROC")
    csv_path = write_items(tmp_path / "p.csv", batch.items)
    db = tmp_path / "run.db"
    balance_before = sim.balance()
    env = sim_env(sim, tmp_path)
    # About 3 s of run (60 rounds of 4 transfers held 50 ms): the others start well inside it.
    sim.inject("transfer_bank", "latency", delay=0.05, times=ITEMS)
    async with asyncio.timeout(TIMEOUT):
        watch = Stopwatch()
        first = await start(
            *cli_run_args(csv_path, db, "--concurrency", "4"), env=env, cwd=tmp_path
        )
        async with killed_on_exit(first):
            await wait_until(lambda: len(sim.transfers) >= 10)
            second, third = await asyncio.gather(
                cli(*cli_run_args(csv_path, db), env=env, cwd=tmp_path),
                cli("payouts", "resume", str(db), env=env, cwd=tmp_path),
            )
            still_running = first.returncode is None
            result = await finish(first)
        await settle_simulator(sim)
        sends = Counter(transfer_refs(sim))
        figures = journal_figures(
            "two-processes",
            "a second payouts run and a payouts resume started over a live run's journal",
            refused=[second.returncode, third.returncode],
            first_run={"exit": result.returncode, "seconds": watch.lap()},
            transfer_requests=sum(sends.values()),
            paid_twice=paid_twice(sim, batch.references),
            payees_skipped=payees_skipped(sim, batch),
        )
        assert still_running
        for refused in (second, third):
            assert refused.returncode == 7, refused
            assert f"in use by pid {first.pid} on host " in refused.stderr
            assert "Traceback" not in refused.stderr
        assert result.returncode == expected_exit(batch), result
        assert set(sends.values()) == {1}  # each reference sent once, by the first run
        prove_settled(sim, batch, db, balance_before)
        figures["verified"] = True
