"""The bulk payout runner (:mod:`doku_async.bulk`) against the embedded simulator.

Every run goes through a real :class:`~doku_async.DokuClient` (instant sleeps, no jitter) to a
``DokuSimulator`` on 127.0.0.1, and every test that pays checks the simulator's ledger: no
reference is ever committed twice. Also unit tests of the journal, the rate limiter and the CSV
reader.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import client_for, wait_until

from doku_async import ConfigurationError, DokuClient, Timeouts
from doku_async.bulk import (
    FINAL_STATES,
    BulkProgress,
    BulkRunner,
    BulkSummary,
    ItemResult,
    Journal,
    PayoutItem,
    PreflightError,
    RateLimiter,
    payout_item,
)
from doku_async.bulk._csv import CsvInputError, ResultWriter, read_payouts
from doku_async.testing import DokuSimulator, SimulatorCredentials

CUSTOMER = "628115678890"
TIMEOUT = 30
TIMEOUTS = Timeouts(connect=2.0, attempt=5.0, total=15.0)  # the clients' timeouts


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
async def doku(sim: DokuSimulator) -> AsyncIterator[DokuClient]:
    async with client_for(sim, timeouts=TIMEOUTS) as client:
        yield client


def plain(i: int, *, amount: str = "150000", prefix: str = "PAY") -> PayoutItem:
    """An ordinary payout that the simulator pays at once."""
    return payout_item(
        reference=f"{prefix}-{i:05d}",
        bank_code=("014", "008", "009", "451")[i % 4],
        account_number=f"{5_000_000_000 + i * 7919}",
        account_name=f"Driver {i:05d}",
        amount=amount,
        remark="October earnings",
        line=i + 2,
    )


def failing_unpaid(i: int, *, amount: str = "150000") -> PayoutItem:
    """Bank 002 + an account containing 12345: UNPAID, then FAILED (``06``)."""
    return payout_item(
        reference=f"PAY-{i:05d}",
        bank_code="002",
        account_number=f"9{i:05d}12345",
        account_name=f"Driver {i:05d}",
        amount=amount,
        line=i + 2,
    )


def succeeding_unpaid(i: int, *, amount: str = "150000") -> PayoutItem:
    """Another bank + an account containing 12345: UNPAID, then SUCCESS."""
    return payout_item(
        reference=f"PAY-{i:05d}",
        bank_code="014",
        account_number=f"7{i:05d}12345",
        account_name=f"Driver {i:05d}",
        amount=amount,
        line=i + 2,
    )


def mixed_items(count: int) -> list[PayoutItem]:
    """``count`` items: every 20th fails after UNPAID, every 20th (offset) succeeds after it."""
    items: list[PayoutItem] = []
    for i in range(count):
        amount = f"{100_000 + (i * 2_500) % 350_000}.{i % 100:02d}"
        if i % 20 == 7:
            items.append(failing_unpaid(i, amount=amount))
        elif i % 20 == 13:
            items.append(succeeding_unpaid(i, amount=amount))
        else:
            items.append(plain(i, amount=amount))
    return items


def body_of(request: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(request.body)
    return parsed


def transfer_requests_by_ref(sim: DokuSimulator) -> Counter[str]:
    """How many ``transfer_bank`` requests reached the simulator, per reference."""
    return Counter(body_of(r)["partnerReferenceNo"] for r in sim.requests_for("transfer_bank"))


def checked_refs(sim: DokuSimulator) -> list[str]:
    """References asked about through check status, in order."""
    return [body_of(r)["originalPartnerReferenceNo"] for r in sim.requests_for("check_status")]


def assert_never_paid_twice(sim: DokuSimulator, items: Iterable[PayoutItem]) -> None:
    twice = [i.reference for i in items if sim.transfer_count(i.reference) > 1]
    assert twice == [], f"paid twice: {twice}"


def _is_runner_task(task: asyncio.Task[Any]) -> bool:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", "").startswith("BulkRunner.results.")


async def kill(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` (a run, or a ``results().aclose()``) like a crash stops a process.

    The runner's own tasks can stay blocked after a cancellation (see
    ``test_abandoning_a_run_returns_promptly``): they are cancelled again here so the test can
    go on to what it checks. Once that bug is fixed this loop does nothing extra.
    """
    task.cancel()
    async with asyncio.timeout(10):
        while True:
            leftovers = [t for t in asyncio.all_tasks() if _is_runner_task(t) and not t.done()]
            if task.done() and not leftovers:
                break
            await asyncio.sleep(0.02)
            for t in leftovers:
                t.cancel()
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


def in_flight_transfers(sim: DokuSimulator) -> list[str]:
    """References of ``transfer_bank`` requests the simulator holds unanswered."""
    return [
        body_of(r)["partnerReferenceNo"] for r in sim.requests_for("transfer_bank") if r.status == 0
    ]


# ---------------------------------------------------------------- a run, mixed outcomes


async def test_mixed_outcomes_counts_amounts_progress_and_exit_code(
    sim: DokuSimulator, doku: DokuClient, tmp_path: Path
) -> None:
    items = mixed_items(300)
    progress: list[BulkProgress] = []
    seen: list[ItemResult] = []
    journal = Journal(tmp_path / "run.db")
    runner = BulkRunner(
        doku,
        customer_number=CUSTOMER,
        concurrency=16,
        journal=journal,
        wait_for_final=True,
        poll_interval=0.01,
        final_timeout=10,
        progress=progress.append,
    )
    async with asyncio.timeout(TIMEOUT):
        summary = await runner.run(items, on_result=seen.append)

    failing = {i.reference for i in items if i.bank_code == "002"}
    late_success = {
        i.reference for i in items if i.bank_code != "002" and "12345" in i.account_number
    }
    assert len(failing) == 15
    assert len(late_success) == 15
    by_ref = {r.reference: r for r in seen}
    assert len(seen) == len(by_ref) == 300
    for ref in failing:
        assert by_ref[ref].status == "failed"
        assert by_ref[ref].code == "06"
        assert by_ref[ref].retryable is False
    for ref in set(by_ref) - failing:
        assert by_ref[ref].status == "succeeded", by_ref[ref]
    for ref in late_success:
        assert by_ref[ref].code == "00"
        assert sim.transfers[ref].status == "00"
        assert ref in checked_refs(sim)  # it was seen pending, then polled to its end

    assert summary.counts == {
        "succeeded": 285,
        "accepted": 0,
        "failed": 15,
        "refunded": 0,
        "pending": 0,
        "unknown": 0,
        "skipped": 0,
    }
    assert summary.total == 300
    assert summary.done == 300
    assert summary.amount_paid == sum(
        (i.amount for i in items if i.reference not in failing), Decimal("0.00")
    )
    assert summary.exit_code == 1

    # Progress: once per item, ``done`` counting up one by one.
    assert [p.done for p in progress] == list(range(1, 301))
    assert all(p.total == 300 for p in progress)
    assert progress[-1].succeeded == 285
    assert progress[-1].failed == 15

    # Ledger: each item sent once, under the external id the result (and journal) carry.
    for item in items:
        assert sim.transfer_count(item.reference) == 1
        assert by_ref[item.reference].external_id == sim.transfers[item.reference].external_id
        entry = journal.get(item.reference)
        assert entry is not None
        assert entry.external_id == by_ref[item.reference].external_id
    assert_never_paid_twice(sim, items)
    assert journal.counts() == {"succeeded": 285, "failed": 15}
    # The failed ones were refunded by the simulator: the balance lost only what was paid.
    assert sim.balance() == Decimal("1000000000.00") - summary.amount_paid
    journal.close()


async def test_all_succeeded_exit_code_zero_and_summary_stats(doku: DokuClient) -> None:
    items = [plain(i) for i in range(20)]
    runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=5)
    async with asyncio.timeout(TIMEOUT):
        summary = await runner.run(items)
    assert summary.counts["succeeded"] == 20
    assert summary.exit_code == 0
    assert summary.amount_paid == Decimal("3000000.00")
    assert summary.elapsed > 0
    assert summary.throughput > 0
    assert 0 < summary.percentile(50) <= summary.percentile(99)


def test_exit_code_prefers_open_outcomes_over_failures() -> None:
    summary = BulkSummary()
    assert summary.exit_code == 0
    summary.add(ItemResult(reference="a", status="skipped", amount=Decimal("1.00")))
    assert summary.exit_code == 0
    summary.add(ItemResult(reference="b", status="failed", amount=Decimal("1.00")))
    assert summary.exit_code == 1
    summary.add(ItemResult(reference="c", status="pending", amount=Decimal("1.00")))
    assert summary.exit_code == 3
    summary = BulkSummary()
    summary.add(ItemResult(reference="d", status="unknown", amount=Decimal("1.00")))
    assert summary.exit_code == 3
    assert summary.amount_paid == Decimal("0.00")


async def test_results_stream_before_the_input_is_exhausted(
    sim: DokuSimulator, doku: DokuClient
) -> None:
    total = 200
    produced = 0

    async def source() -> AsyncIterator[PayoutItem]:
        nonlocal produced
        for i in range(total):
            produced += 1
            yield plain(i)
            await asyncio.sleep(0)

    runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=4)
    produced_at_first: int | None = None
    results: list[ItemResult] = []
    async with asyncio.timeout(TIMEOUT):
        async for result in runner.results(source()):
            if produced_at_first is None:
                produced_at_first = produced
            results.append(result)
    assert produced_at_first is not None
    # The input is read only a bounded window ahead of the workers (flat memory).
    assert produced_at_first <= 4 * 3 + 2, produced_at_first
    assert len(results) == total
    assert runner.summary.total is None  # unknown for a stream
    assert all(r.status == "succeeded" for r in results)
    assert_never_paid_twice(sim, (plain(i) for i in range(total)))


@pytest.mark.parametrize("kind", ["list", "tuple", "generator", "async_generator"])
async def test_input_kinds(sim: DokuSimulator, doku: DokuClient, kind: str) -> None:
    items = [plain(i) for i in range(40)]

    def gen() -> Iterator[PayoutItem]:
        yield from items

    async def agen() -> AsyncIterator[PayoutItem]:
        for item in items:
            yield item

    source: Iterable[PayoutItem] | AsyncIterator[PayoutItem]
    if kind == "list":
        source = items
    elif kind == "tuple":
        source = tuple(items)
    elif kind == "generator":
        source = gen()
    else:
        source = agen()
    runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=8)
    async with asyncio.timeout(TIMEOUT):
        summary = await runner.run(source)
    assert summary.counts["succeeded"] == 40
    assert summary.total == (40 if kind in ("list", "tuple") else None)
    for item in items:
        assert sim.transfer_count(item.reference) == 1


async def test_check_balance_refuses_when_short_and_sends_nothing(
    creds: SimulatorCredentials,
) -> None:
    items = [plain(i, amount="20000") for i in range(10)]  # 200,000 in all
    async with (
        DokuSimulator(credentials=creds, balance="199999.99") as sim,
        client_for(sim, timeouts=TIMEOUTS) as doku,
    ):
        runner = BulkRunner(
            doku, customer_number=CUSTOMER, check_balance=True, agent_key=creds.agent_key
        )
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(PreflightError, match="does not cover"):
                await runner.run(items)
        assert {r.operation for r in sim.requests} == {"token", "balance_inquiry"}
        assert len(sim.requests_for("balance_inquiry")) == 1
        assert sim.transfers == {}
        assert sim.balance() == Decimal("199999.99")


async def test_check_balance_passes_when_enough(creds: SimulatorCredentials) -> None:
    items = [plain(i, amount="20000") for i in range(10)]
    async with (
        DokuSimulator(credentials=creds, balance="200000.00") as sim,
        client_for(sim, timeouts=TIMEOUTS) as doku,
    ):
        runner = BulkRunner(
            doku, customer_number=CUSTOMER, check_balance=True, agent_key=creds.agent_key
        )
        async with asyncio.timeout(TIMEOUT):
            summary = await runner.run(items)
        assert summary.counts["succeeded"] == 10
        ops = [r.operation for r in sim.requests if r.operation != "token"]
        assert ops[0] == "balance_inquiry"
        assert ops.count("balance_inquiry") == 1
        assert sim.balance() == Decimal("0.00")
        assert_never_paid_twice(sim, items)


async def test_check_balance_with_a_stream_needs_a_total(
    creds: SimulatorCredentials, sim: DokuSimulator, doku: DokuClient
) -> None:
    async def stream() -> AsyncIterator[PayoutItem]:
        yield plain(1)

    runner = BulkRunner(
        doku, customer_number=CUSTOMER, check_balance=True, agent_key=creds.agent_key
    )
    with pytest.raises(ConfigurationError, match="total_amount"):
        await runner.run(stream())
    assert sim.transfers == {}
    summary = await runner.run(stream(), total_amount=Decimal("150000.00"))
    assert summary.counts["succeeded"] == 1
    with pytest.raises(ConfigurationError, match="agent_key"):
        BulkRunner(doku, customer_number=CUSTOMER, check_balance=True)
    with pytest.raises(ConfigurationError, match="concurrency"):
        BulkRunner(doku, customer_number=CUSTOMER, concurrency=0)


async def test_invalid_item_fails_alone_and_the_run_goes_on(
    sim: DokuSimulator, doku: DokuClient
) -> None:
    # Built without validation: account_inquiry refuses it before sending anything.
    bad = PayoutItem(
        reference="BAD-1",
        bank_code="014",
        account_number="12ab",
        account_name="X",
        amount=Decimal("1000.00"),
    )
    items = [plain(1), bad, plain(2)]
    runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=2)
    async with asyncio.timeout(TIMEOUT):
        results = {r.reference: r async for r in runner.results(items)}
    assert results["BAD-1"].status == "failed"
    assert results["BAD-1"].retryable is False
    assert "account_number" in results["BAD-1"].message
    assert results[plain(1).reference].status == "succeeded"
    assert results[plain(2).reference].status == "succeeded"
    assert sim.transfer_count("BAD-1") == 0
    # Nothing at all went out for it: two inquiries and two transfers, none for BAD-1.
    assert len(sim.requests_for("account_inquiry")) == 2
    assert len(sim.requests_for("transfer_bank")) == 2
    assert runner.summary.exit_code == 1


async def test_the_runner_sends_the_bodies_the_public_methods_send(sim: DokuSimulator) -> None:
    """The runner builds its requests from checked items without validating them again: they
    must be byte for byte what ``account_inquiry`` and ``transfer_bank`` send."""
    item = payout_item(
        reference="SAME-1",
        bank_code="014",
        account_number="8377388292",
        account_name="FHILEA HERMANUS",
        amount="150000.5",
        remark="October earnings",
    )
    async with client_for(sim, timeouts=TIMEOUTS) as doku:
        runner = BulkRunner(
            doku, customer_number=CUSTOMER, channel_code="07", sender_country_code="ID"
        )
        summary = await runner.run([item])
        assert summary.counts["succeeded"] == 1
        inquiry_sent, transfer_sent = (
            sim.requests_for("account_inquiry")[0],
            sim.requests_for("transfer_bank")[0],
        )
        inquiry = json.loads(inquiry_sent.body)
        transfer = json.loads(transfer_sent.body)
        answer = await doku.kirim.account_inquiry(
            partner_reference_no=inquiry["partnerReferenceNo"],
            customer_number=CUSTOMER,
            beneficiary_account_number=item.account_number,
            beneficiary_bank_code=item.bank_code,
            beneficiary_account_name=item.account_name,
            amount="150000.50",
            channel_code="07",
        )
        await doku.kirim.transfer_bank(
            partner_reference_no="SAME-2",
            customer_number=CUSTOMER,
            beneficiary_account_number=item.account_number,
            beneficiary_bank_code=item.bank_code,
            amount="150000.50",
            session_id=answer.session_id,
            beneficiary_account_name=item.account_name,
            channel_code="07",
            remark="October earnings",
        )
    assert sim.requests_for("account_inquiry")[1].body == inquiry_sent.body
    public_transfer = json.loads(sim.requests_for("transfer_bank")[1].body)
    # The same keys in the same order; only the reference and DOKU's session differ.
    assert list(public_transfer) == list(transfer)
    assert {**public_transfer, "partnerReferenceNo": "SAME-1", "sessionId": "S"} == {
        **transfer,
        "sessionId": "S",
    }
    assert transfer["additionalInfo"] == {
        "channelCode": "07",
        "beneficiaryAccountName": "FHILEA HERMANUS",
        "remark": "October earnings",
    }


async def test_a_reference_repeated_in_the_input_is_counted_once(
    sim: DokuSimulator, doku: DokuClient, tmp_path: Path
) -> None:
    item = plain(1)
    journal = Journal(tmp_path / "run.db")
    runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=4, journal=journal)
    async with asyncio.timeout(TIMEOUT):
        results = [r async for r in runner.results([item, item, item])]
    journal.close()
    assert sim.transfer_count(item.reference) == 1  # the ledger is right ...
    assert len(results) == 3
    # ... the summary should be too: one payment, the repetitions not counted as paid.
    assert runner.summary.amount_paid == item.amount, runner.summary
    assert runner.summary.counts["succeeded"] == 1, runner.summary


async def test_check_balance_on_a_resumed_run_counts_only_what_is_left(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    items = [plain(i, amount="20000") for i in range(5)]
    journal = Journal(tmp_path / "run.db")
    async with (
        DokuSimulator(credentials=creds, balance="100000.00") as sim,
        client_for(sim, timeouts=TIMEOUTS) as doku,
    ):
        async with asyncio.timeout(TIMEOUT):
            await BulkRunner(doku, customer_number=CUSTOMER, journal=journal).run(items[:4])
        assert sim.balance() == Decimal("20000.00")  # exactly the last item's amount
        runner = BulkRunner(
            doku,
            customer_number=CUSTOMER,
            journal=journal,
            check_balance=True,
            agent_key=creds.agent_key,
        )
        try:
            async with asyncio.timeout(TIMEOUT):
                summary = await runner.run(items)
        finally:
            journal.close()
        assert summary.counts == {
            "succeeded": 1,
            "accepted": 0,
            "failed": 0,
            "refunded": 0,
            "pending": 0,
            "unknown": 0,
            "skipped": 4,
        }
        assert_never_paid_twice(sim, items)


# ------------------------------------------------------------------- killed, resumed


async def test_killed_halfway_with_transfers_in_flight_then_resumed(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    items = [plain(i) for i in range(40)]
    path = tmp_path / "run.db"
    journal = Journal(path)
    journal.plan(items)
    first: list[ItemResult] = []

    def on_result(result: ItemResult) -> None:
        first.append(result)
        if len(first) == 20:  # halfway: the next transfers hang 0.5 s, then commit
            sim.inject("transfer_bank", "latency", delay=0.5, times=5)

    async with asyncio.timeout(TIMEOUT):
        async with client_for(sim, timeouts=TIMEOUTS) as doku:
            runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=4, journal=journal)
            task = asyncio.create_task(runner.run(items, on_result=on_result))
            await wait_until(lambda: len(in_flight_transfers(sim)) >= 2)
            hanging = set(in_flight_transfers(sim))
            await kill(task)
        await sim.drain()  # the hanging transfers commit now, after the "crash"
        sim.faults.clear()

    journal.close()
    journal = Journal(path)
    states = {e.item.reference: e.state for e in journal.entries()}
    sending = {ref for ref, state in states.items() if state == "sending"}
    assert hanging <= sending
    assert set(states.values()) <= {"planned", "sending", "succeeded"}
    assert 20 <= sum(1 for s in states.values() if s == "succeeded") < 40
    committed_during_kill = {ref for ref in sending if sim.transfer_count(ref) == 1}
    assert hanging <= committed_during_kill
    paid_before = {r.reference for r in first if r.status == "succeeded"}
    checks_before = len(sim.requests_for("check_status"))

    async with asyncio.timeout(TIMEOUT), client_for(sim, timeouts=TIMEOUTS) as doku:
        resumed = BulkRunner(doku, customer_number=CUSTOMER, concurrency=4, journal=journal)
        results = {r.reference: r async for r in resumed.results(items)}

    assert set(results) == {i.reference for i in items}
    assert {r.status for r in results.values()} <= {"succeeded", "skipped"}
    for ref in paid_before:
        assert results[ref].status == "skipped"
        assert results[ref].previous == "succeeded"
    # Committed while the run died: settled through check status, never sent again.
    settled_by = checked_refs(sim)[checks_before:]
    per_ref = transfer_requests_by_ref(sim)
    for ref in committed_during_kill:
        assert ref in settled_by
        assert results[ref].status == "succeeded"
        assert results[ref].external_id == sim.transfers[ref].external_id
        assert per_ref[ref] == 1
    for item in items:
        assert sim.transfer_count(item.reference) == 1
        entry = journal.get(item.reference)
        assert entry is not None
        assert entry.state == "succeeded"
    assert_never_paid_twice(sim, items)
    assert resumed.summary.exit_code == 0
    assert resumed.summary.counts["skipped"] == len(paid_before)
    journal.close()


@pytest.mark.parametrize("how", ["aclose", "cancel"])
async def test_abandoning_a_run_returns_promptly(
    sim: DokuSimulator, doku: DokuClient, tmp_path: Path, how: str
) -> None:
    items = [plain(i) for i in range(100)]
    journal = Journal(tmp_path / "run.db")
    runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=4, journal=journal)
    if how == "aclose":
        results = runner.results(items)
        seen = 0
        async for _ in results:
            seen += 1
            if seen == 50:
                break
        stopper = asyncio.create_task(results.aclose())  # type: ignore[attr-defined]
    else:
        got: list[ItemResult] = []
        stopper = asyncio.create_task(runner.run(items, on_result=got.append))
        await wait_until(lambda: len(got) >= 50)
        stopper.cancel()
    try:
        done, _ = await asyncio.wait({stopper}, timeout=1.0)
        assert stopper in done, "abandoning the run did not return within 1 s"
    finally:
        await kill(stopper)
        await sim.drain()
        assert_never_paid_twice(sim, items)
        journal.close()


async def test_unknown_outcomes_while_doku_misbehaves_then_resume_settles(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    items = [plain(i) for i in range(10)]
    path = tmp_path / "run.db"
    # Every transfer commits, then the connection drops; check status answers 500 throughout.
    sim.inject("transfer_bank", "drop_after_commit", times=10)
    sim.inject("check_status", "error", status=500, times=200)
    journal = Journal(path)
    async with asyncio.timeout(TIMEOUT), client_for(sim, timeouts=TIMEOUTS) as doku:
        runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=5, journal=journal)
        first = {r.reference: r async for r in runner.results(items)}
    assert {r.status for r in first.values()} == {"unknown"}
    assert runner.summary.exit_code == 3
    assert runner.summary.amount_paid == Decimal("0.00")
    for item in items:
        result = first[item.reference]
        assert result.external_id == sim.transfers[item.reference].external_id
        entry = journal.get(item.reference)
        assert entry is not None
        assert entry.state == "unknown"
        assert entry.external_id == result.external_id
        assert sim.transfer_count(item.reference) == 1
    assert journal.counts() == {"unknown": 10}

    sim.faults.clear()  # DOKU behaves again
    checks_before = len(sim.requests_for("check_status"))
    async with asyncio.timeout(TIMEOUT), client_for(sim, timeouts=TIMEOUTS) as doku:
        resumed = BulkRunner(doku, customer_number=CUSTOMER, concurrency=5, journal=journal)
        second = {r.reference: r async for r in resumed.results(items)}
    assert {r.status for r in second.values()} == {"succeeded"}
    assert resumed.summary.counts["unknown"] == 0
    assert resumed.summary.exit_code == 0
    assert journal.counts() == {"succeeded": 10}
    new_checks = sim.requests_for("check_status")[checks_before:]
    asked = {body_of(r)["originalPartnerReferenceNo"]: body_of(r) for r in new_checks}
    per_ref = transfer_requests_by_ref(sim)
    for item in items:
        assert item.reference in asked
        # Settled by both references, the external id being the one journaled before sending.
        assert asked[item.reference].get("originalExternalId") == first[item.reference].external_id
        assert per_ref[item.reference] == 1
        assert sim.transfer_count(item.reference) == 1
    journal.close()


async def test_pending_items_are_settled_on_resume_without_resending(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    items = [failing_unpaid(1), succeeding_unpaid(2), plain(3)]
    journal = Journal(tmp_path / "run.db")
    async with DokuSimulator(credentials=creds, notification_delay=0.3) as sim:
        async with asyncio.timeout(TIMEOUT), client_for(sim, timeouts=TIMEOUTS) as doku:
            runner = BulkRunner(
                doku,
                customer_number=CUSTOMER,
                journal=journal,
                wait_for_final=True,
                final_timeout=0.0,  # do not wait: UNPAID items stay pending
            )
            first = {r.reference: r.status async for r in runner.results(items)}
        assert first == {
            items[0].reference: "pending",
            items[1].reference: "pending",
            items[2].reference: "succeeded",
        }
        assert runner.summary.exit_code == 3
        assert journal.counts() == {"pending": 2, "succeeded": 1}
        await sim.drain()  # the UNPAID transfers reach their final status

        async with asyncio.timeout(TIMEOUT), client_for(sim, timeouts=TIMEOUTS) as doku:
            resumed = BulkRunner(doku, customer_number=CUSTOMER, journal=journal)
            second = {r.reference: r async for r in resumed.results(items)}
        assert second[items[0].reference].status == "failed"
        assert second[items[0].reference].code == "06"
        assert second[items[1].reference].status == "succeeded"
        assert second[items[2].reference].status == "skipped"
        assert resumed.summary.exit_code == 1
        per_ref = transfer_requests_by_ref(sim)
        for item in items:
            assert per_ref[item.reference] == 1
            assert sim.transfer_count(item.reference) == 1
    journal.close()


async def test_stop_finishes_in_flight_items_and_resume_finishes_the_rest(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    items = [plain(i) for i in range(20)]
    journal = Journal(tmp_path / "run.db")
    journal.plan(items)
    sim.inject("transfer_bank", "latency", delay=0.05, times=100)
    results: list[ItemResult] = []
    async with asyncio.timeout(TIMEOUT), client_for(sim, timeouts=TIMEOUTS) as doku:
        runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=2, journal=journal)
        async for result in runner.results(items):
            results.append(result)
            if len(results) == 1:
                runner.stop()
                assert runner.stopped
    await sim.drain()
    sim.faults.clear()
    done = {r.reference for r in results}
    assert 1 <= len(done) < len(items)
    assert all(r.status == "succeeded" for r in results)
    # In-flight items finished and are journaled; nothing is left "sending".
    counts = journal.counts()
    assert "sending" not in counts
    assert counts.get("succeeded") == len(done)
    assert counts.get("planned") == len(items) - len(done)
    # The rest never produced a result and were never sent.
    assert set(transfer_requests_by_ref(sim)) == done
    for item in items:
        assert sim.transfer_count(item.reference) == (1 if item.reference in done else 0)

    async with asyncio.timeout(TIMEOUT), client_for(sim, timeouts=TIMEOUTS) as doku:
        resumed = BulkRunner(doku, customer_number=CUSTOMER, concurrency=2, journal=journal)
        second = {r.reference: r async for r in resumed.results(items)}
    for item in items:
        expected = "skipped" if item.reference in done else "succeeded"
        assert second[item.reference].status == expected
        assert sim.transfer_count(item.reference) == 1
    assert journal.counts() == {"succeeded": 20}
    journal.close()


async def test_stop_starts_no_new_items(sim: DokuSimulator) -> None:
    items = [plain(i) for i in range(20)]
    sim.inject("transfer_bank", "latency", delay=0.05, times=100)
    concurrency = 2
    results: list[ItemResult] = []
    started_at_stop = 0
    async with asyncio.timeout(TIMEOUT), client_for(sim, timeouts=TIMEOUTS) as doku:
        runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=concurrency)
        async for result in runner.results(items):
            results.append(result)
            if len(results) == 1:
                # Items started so far: each starts with its account inquiry.
                started_at_stop = len(sim.requests_for("account_inquiry"))
                runner.stop()
    await sim.drain()
    assert started_at_stop <= 1 + concurrency
    # Only what was taken before stop() may finish: the item whose result triggered it, and
    # at most one item per worker taken while that result was on its way to the consumer.
    # (The server's count lags: an item just taken may not have sent its inquiry yet.)
    assert len(results) <= 1 + 2 * concurrency, (len(results), started_at_stop)
    assert len(results) < len(items)
    assert set(transfer_requests_by_ref(sim)) <= {r.reference for r in results}


# --------------------------------------------------------------------- 429 storms


async def test_429_storm_slows_the_run_but_every_item_succeeds(sim: DokuSimulator) -> None:
    items = [plain(i) for i in range(30)]
    sim.inject(
        "account_inquiry", "error", status=429, response_code="4294200", retry_after="0", times=40
    )
    sim.inject(
        "transfer_bank", "error", status=429, response_code="4294300", retry_after="0", times=40
    )
    async with asyncio.timeout(TIMEOUT), client_for(sim, timeouts=TIMEOUTS) as doku:
        runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=8, rate=200)
        # Every 429 answer (each of the SDK's own retries too) halves the rate, so with the
        # default floor of 0.5/s this storm takes ~40 s for 30 items; a higher floor keeps
        # the test fast and still shows the rate going down.
        runner.limiter = RateLimiter(200, min_rate=50)
        started = time.perf_counter()
        summary = await runner.run(items)
        elapsed = time.perf_counter() - started
    assert summary.counts["succeeded"] == 30, summary
    assert summary.exit_code == 0
    assert runner.limiter.throttled == 80  # every 429 answer fed the limiter
    assert runner.limiter.rate is not None
    assert runner.limiter.rate < 200
    assert elapsed < TIMEOUT
    assert sim.faults.pending("account_inquiry") == 0
    assert sim.faults.pending("transfer_bank") == 0
    assert {r.response_code for r in sim.requests_for("transfer_bank") if r.status == 429} == {
        "4294300"
    }
    for item in items:
        assert sim.transfer_count(item.reference) == 1
    # The listener the runner hooked into the client is removed after the run.
    assert doku.rate_limit_listeners == []


class FakeTime:
    """An injected clock and sleep; ``advance`` makes sleeping move the clock."""

    def __init__(self, *, advance: bool = True) -> None:
        self.now = 1000.0
        self.advance = advance
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 9))
        if self.advance:
            self.now += seconds


def limiter(rate: float | None, t: FakeTime, **kwargs: Any) -> RateLimiter:
    return RateLimiter(rate, clock=t.clock, sleep=t.sleep, **kwargs)


async def test_ratelimiter_paces_at_the_configured_rate() -> None:
    t = FakeTime()
    lim = limiter(10, t)
    for _ in range(5):
        await lim.acquire()
    assert t.sleeps == [0.1, 0.1, 0.1, 0.1]
    assert t.now == pytest.approx(1000.4)
    # Waiting longer than a slot earns no burst: the next one goes at once, then paced.
    t.now += 5
    await lim.acquire()
    await lim.acquire()
    assert t.sleeps[4:] == [0.1]


async def test_ratelimiter_concurrent_callers_get_successive_slots() -> None:
    t = FakeTime(advance=False)
    lim = limiter(4, t)
    await asyncio.gather(*(lim.acquire() for _ in range(5)))
    assert sorted(t.sleeps) == [0.25, 0.5, 0.75, 1.0]


async def test_ratelimiter_halves_on_throttle_down_to_a_floor() -> None:
    t = FakeTime()
    lim = limiter(100, t, min_rate=20)
    lim.throttle()
    assert lim.rate == 50
    lim.throttle()  # the same burst (within a second): one signal, not another halving
    assert lim.rate == 50
    t.now += 1.0
    lim.throttle()
    assert lim.rate == 25
    t.now += 1.0
    lim.throttle()
    assert lim.rate == 20
    assert lim.throttled == 4
    assert lim.target == 100
    # Paced at the new rate.
    await lim.acquire()
    await lim.acquire()
    assert t.sleeps == [pytest.approx(1 / 20)]


async def test_ratelimiter_retry_after_pushes_the_next_slot() -> None:
    t = FakeTime()
    lim = limiter(100, t)
    await lim.acquire()
    lim.throttle(retry_after=3.0)
    await lim.acquire()
    assert t.sleeps == [pytest.approx(3.0)]
    # A Retry-After earlier than the next slot does not pull it in.
    lim.throttle(retry_after=0.0)
    await lim.acquire()
    assert t.sleeps[1] > 0


async def test_ratelimiter_recovers_toward_the_target() -> None:
    t = FakeTime()
    lim = limiter(100, t)
    lim.throttle()
    assert lim.rate == 50
    t.now += 2.0  # 5% of the target per second without a 429
    await lim.acquire()
    assert lim.rate == pytest.approx(60.0)
    t.now += 4.0
    await lim.acquire()
    assert lim.rate == pytest.approx(80.0)
    t.now += 100.0
    await lim.acquire()
    assert lim.rate == 100  # capped at the target


async def test_ratelimiter_without_rate_paces_only_after_the_first_throttle() -> None:
    t = FakeTime(advance=False)
    lim = limiter(None, t)
    for _ in range(10):
        await lim.acquire()
    assert t.sleeps == []
    assert lim.rate is None
    lim.throttle()  # 10 requests in the last second: start at half of that
    assert lim.rate == 5.0
    assert lim.throttled == 1
    for _ in range(3):
        await lim.acquire()
    assert t.sleeps == [pytest.approx(0.2), pytest.approx(0.4)]


async def test_ratelimiter_without_rate_honours_retry_after_before_pacing() -> None:
    t = FakeTime()
    lim = limiter(None, t)
    await lim.acquire()
    lim.throttle(retry_after=2.0)
    await lim.acquire()
    assert t.sleeps == [pytest.approx(2.0)]


def test_ratelimiter_rejects_a_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(-1)


# ------------------------------------------------------------------------- journal


def test_journal_plan_is_idempotent(tmp_path: Path) -> None:
    items = [plain(i) for i in range(5)]
    with_journal = Journal(tmp_path / "j.db")
    assert with_journal.plan(items) == 5
    with_journal.record(items[0], "succeeded", code="00", reference_no="DK1")
    assert with_journal.plan(items) == 0
    assert with_journal.plan([*items, plain(9)]) == 1
    entry = with_journal.get(items[0].reference)
    assert entry is not None
    assert entry.state == "succeeded"  # planning again never resets a state
    assert with_journal.counts() == {"planned": 5, "succeeded": 1}
    with_journal.close()


def test_journal_mark_sending_before_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    item = plain(1)
    assert journal.get(item.reference) is None
    journal.mark_sending(item, "12345678901234567890")  # not planned first: inserted
    entry = journal.get(item.reference)
    assert entry is not None
    assert (entry.state, entry.external_id) == ("sending", "12345678901234567890")
    assert entry.item == item
    journal.record(item, "unknown", message="connection dropped")
    entry = journal.get(item.reference)
    assert entry is not None
    assert (entry.state, entry.external_id, entry.message) == (
        "unknown",
        "12345678901234567890",  # the outcome keeps the external id it was sent with
        "connection dropped",
    )
    journal.record(item, "succeeded", code="00", reference_no="DK00000001")
    journal.record(item, "succeeded", code="00")  # a later record without reference_no
    entry = journal.get(item.reference)
    assert entry is not None
    assert (entry.state, entry.code, entry.reference_no) == ("succeeded", "00", "DK00000001")
    assert entry.state in FINAL_STATES
    # A new send of a planned item replaces the external id.
    other = plain(2)
    journal.plan([other])
    journal.mark_sending(other, "1")
    journal.mark_sending(other, "2")
    entry = journal.get(other.reference)
    assert entry is not None
    assert entry.external_id == "2"
    journal.record(other, "retry", message="x" * 2000)
    entry = journal.get(other.reference)
    assert entry is not None
    assert len(entry.message) == 500
    journal.close()


def test_journal_counts_entries_order_and_exclude_final(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    items = [plain(i) for i in (5, 3, 9, 1, 7, 2, 8)]  # lines 7, 5, 11, 3, 9, 4, 10
    journal.plan(items)
    states = ["succeeded", "failed", "retry", "pending", "unknown", "sending", "planned"]
    for item, state in zip(items, states, strict=True):
        if state == "sending":
            journal.mark_sending(item, "42")
        elif state != "planned":
            journal.record(item, state)
    assert journal.counts() == dict.fromkeys(states, 1)
    lines = [e.item.line for e in journal.entries()]
    assert lines == [3, 4, 5, 7, 9, 10, 11]  # input order, whatever the insertion order
    open_states = {e.state for e in journal.entries(exclude_final=True)}
    assert open_states == {"retry", "pending", "unknown", "sending", "planned"}
    assert all(e.item.line is not None for e in journal.entries(exclude_final=True))
    # Amounts and remarks round-trip exactly.
    entry = journal.get(items[0].reference)
    assert entry is not None
    assert entry.item.amount == Decimal("150000.00")
    assert entry.item.remark == "October earnings"
    assert repr(entry) == f"JournalEntry({items[0].reference!r}, state='succeeded')"
    journal.close()


def test_journal_entries_streams_more_than_one_batch(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.plan(plain(i) for i in range(1203))
    refs = [e.item.reference for e in journal.entries()]
    assert refs == [plain(i).reference for i in range(1203)]
    journal.close()


def test_journal_meta_and_reopen_keep_state(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path)
    assert journal.meta() == {}
    journal.set_meta(customer_number=CUSTOMER, note="first")
    journal.set_meta(note="second")
    item = plain(1)
    journal.mark_sending(item, "777")
    journal.close()

    reopened = Journal(str(path))
    assert reopened.meta() == {"customer_number": CUSTOMER, "note": "second"}
    entry = reopened.get(item.reference)
    assert entry is not None
    assert (entry.state, entry.external_id) == ("sending", "777")
    assert entry.item == item
    assert reopened.counts() == {"sending": 1}
    assert reopened.path == str(path)
    reopened.close()


# --------------------------------------------------------------------------- CSV

HEADER = "reference,bank_code,account_number,account_name,amount,remark\n"


def write(path: Path, text: str, *, bom: bool = False) -> Path:
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


def test_read_payouts_valid_file_with_bom_and_remark(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.csv",
        HEADER + "R-1,014,8377388292,FHILEA HERMANUS,200000.00,October earnings\n"
        "R-2, 008 ,1234098765,BUDI SANTOSO,175500.5,\n"
        '"R-3",009,5550001112,"SARI, DEWI",99000,"with ""quotes"""\n',
        bom=True,
    )
    items, total = read_payouts(path)
    assert [i.reference for i in items] == ["R-1", "R-2", "R-3"]
    assert [i.line for i in items] == [2, 3, 4]
    assert items[1].bank_code == "008"  # cells are stripped
    assert items[1].amount == Decimal("175500.50")
    assert items[1].remark is None  # an empty remark is no remark
    assert items[2].account_name == "SARI, DEWI"
    assert items[2].remark == 'with "quotes"'
    assert total == Decimal("474500.50")


def test_read_payouts_without_remark_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.csv",
        "amount,account_name,account_number,bank_code,reference\n"  # any column order
        "1000,A,123,014,R-1\n"
        "2000.01,B,456,014,R-2\n",
    )
    items, total = read_payouts(str(path))
    assert [(i.reference, i.amount, i.remark) for i in items] == [
        ("R-1", Decimal("1000.00"), None),
        ("R-2", Decimal("2000.01"), None),
    ]
    assert total == Decimal("3000.01")


def test_read_payouts_reports_every_error_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.csv",
        HEADER + "R-1,014,8377388292,OK,1000,\n"  # line 2: fine
        "R-2,01A,8377388292,X,1000,\n"  # line 3: bank code not digits
        "R-3,014,83773-88292,,1000,\n"  # line 4: account digits, empty name
        "R-4,014,8377388292,X,10.123,\n"  # line 5: 3 decimals
        "R-1,014,8377388292,X,1000,\n"  # line 6: duplicate of line 2
        "R-6,014,8377388292,X,1000,remark,extra\n"  # line 7: too many fields
        "R-7,014,8377388292,X,abc,\n"  # line 8: not a number
        "R-8,014,8377388292,X,0,\n"  # line 9: not positive
        "R-9,014,8377388292,X,NaN,\n"  # line 10: not finite
        "R 10,014,8377388292,X,1,\n"  # line 11: a space in the reference
        "R-11,014\n",  # line 12: too few fields
    )
    with pytest.raises(CsvInputError) as caught:
        read_payouts(path)
    errors = caught.value.errors
    assert errors[0] == "line 3: bank_code: may contain only digits 0-9"
    assert "line 4: account_number: may contain only digits 0-9" in errors
    assert "line 4: account_name: must not be empty" in errors
    assert "line 5: amount: must have at most 2 decimal places" in errors
    assert "line 6: reference: duplicates line 2" in errors
    assert "line 7: too many fields" in errors
    assert "line 8: amount: is not a number" in errors
    assert "line 9: amount: must be at least 0.01" in errors
    assert "line 10: amount: must be a finite number" in errors
    assert any(e.startswith("line 11: reference:") for e in errors)
    # A short row names its missing columns (issue 15), instead of blaming their values.
    assert [e for e in errors if e.startswith("line 12:")] == [
        "line 12: missing column(s) account_number, account_name, amount: the row has 2 "
        "field(s), the header 6 (reference, bank_code, account_number, account_name, amount, "
        "remark)"
    ]
    assert not any(e.startswith("line 2:") for e in errors)
    assert len(errors) == 11, errors
    assert "11 error(s) in the payout file" in caught.value.message


def test_read_payouts_exponent_amounts_are_exact_decimals(tmp_path: Path) -> None:
    # Exponent notation is usually a spreadsheet's reformatting: the CSV reader refuses it
    # (the Python API still takes "1e3" as exactly 1000); "1,000" has a thousands separator.
    path = write(tmp_path / "p.csv", HEADER + "R-1,014,123,A,1e3,\n")
    with pytest.raises(CsvInputError) as caught:
        read_payouts(path)
    assert caught.value.errors == [
        "line 2: amount: write plain digits, not exponent notation "
        "(a spreadsheet may have reformatted it)"
    ]
    assert payout_item(
        reference="R-1", bank_code="014", account_number="1", account_name="A", amount="1e3"
    ).amount == Decimal("1000.00")
    path = write(tmp_path / "q.csv", HEADER + 'R-1,014,123,A,1.5e-3,\nR-2,014,123,A,"1,000",\n')
    with pytest.raises(CsvInputError) as caught:
        read_payouts(path)
    assert caught.value.errors == [
        "line 2: amount: must have at most 2 decimal places",
        "line 2: amount: write plain digits, not exponent notation "
        "(a spreadsheet may have reformatted it)",
        "line 3: amount: '1,000' has thousands separators: write plain digits with an "
        "optional .00 (e.g. 200000 or 200000.00)",
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "reference,bank_code,account_number,amount\nR,014,1,10\n",
            "line 1: missing column(s): account_name",
        ),
        (
            "reference,bank_code,account_number,account_name,amount,note\nR,014,1,A,10,x\n",
            "line 1: unknown column(s): note",
        ),
        (HEADER, "the file has no payouts"),
        (
            "",
            "line 1: missing column(s): "
            + ", ".join(("reference", "bank_code", "account_number", "account_name", "amount")),
        ),
    ],
)
def test_read_payouts_header_problems(tmp_path: Path, text: str, error: str) -> None:
    path = write(tmp_path / "p.csv", text)
    with pytest.raises(CsvInputError) as caught:
        read_payouts(path)
    assert caught.value.errors == [error]


def test_read_payouts_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(CsvInputError, match="cannot read"):
        read_payouts(tmp_path / "missing.csv")
    path = tmp_path / "latin1.csv"
    path.write_bytes(HEADER.encode() + b"R,014,1,Jos\xe9,10,\n")
    with pytest.raises(CsvInputError, match="cannot read"):
        read_payouts(path)


def test_csv_errors_are_capped_in_the_message(tmp_path: Path) -> None:
    rows = "".join(f"R-{i},X,1,A,1,\n" for i in range(60))
    path = write(tmp_path / "p.csv", HEADER + rows)
    with pytest.raises(CsvInputError) as caught:
        read_payouts(path)
    assert len(caught.value.errors) == 60
    assert "... and 10 more" in caught.value.message


def test_result_writer_rows(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    writer = ResultWriter(out)
    writer.write(
        ItemResult(
            reference="R-1",
            status="succeeded",
            amount=Decimal("10.00"),
            code="00",
            reference_no="DK1",
            external_id="123",
            latency=0.0125,
            line=2,
            bank_code="014",
            bank_name="BCA",
        )
    )
    writer.write(
        ItemResult(reference="R-2", status="skipped", amount=Decimal("5.00"), previous="failed")
    )
    writer.close()
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows[0] == {
        "line": "2",
        "reference": "R-1",
        "status": "succeeded",
        "amount": "10.00",
        "bank_code": "014",
        "bank_name": "BCA",
        "code": "00",
        "message": "",
        "reference_no": "DK1",
        "external_id": "123",
        "latency_ms": "12.5",
    }
    assert rows[1]["status"] == "skipped (failed)"
    assert rows[1]["line"] == ""
    assert rows[1]["external_id"] == ""


async def test_ratelimiter_without_rate_measures_a_short_run_per_second() -> None:
    """A run younger than a second is measured over its own span, not a full second."""
    t = FakeTime(advance=False)
    lim = limiter(None, t)
    for _ in range(100):
        await lim.acquire()
        t.now += 0.001  # 100 requests in 0.1 s: 1,000 per second
    lim.throttle()
    assert lim.rate == pytest.approx(1000 / 2, rel=0.05)


# ------------------------------------------------------------ review findings (regressions)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"customer_number": "0812"},
        {"sender_country_code": "IDN"},
        {"sender_country_code": "id"},  # the right length, not what the request accepts
        {"channel_code": "abc"},
        {"channel_code": "7a"},
        {"rate": 0},
    ],
)
async def test_bad_run_settings_fail_the_run_not_every_item(
    sim: DokuSimulator, kwargs: dict[str, Any]
) -> None:
    """A run-wide typo is a ConfigurationError at once; no item is journaled as failed."""
    options: dict[str, Any] = {"customer_number": CUSTOMER, **kwargs}
    async with client_for(sim, timeouts=TIMEOUTS) as doku:
        with pytest.raises(ConfigurationError):
            BulkRunner(doku, **options)
    assert sim.requests == []


async def test_resume_with_earlier_failures_does_not_exit_0(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    """Exit code 0 means everything was paid: items skipped because they failed earlier keep
    the run from claiming that."""
    db = tmp_path / "run.db"
    items = [plain(0), plain(1)]
    async with client_for(sim, timeouts=TIMEOUTS) as doku:
        first = BulkRunner(doku, customer_number=CUSTOMER, journal=db)
        async with first:
            first.journal.record(items[1], "failed", code="06", message="failed earlier")  # type: ignore[union-attr]
            summary = await first.run(items)
        assert summary.counts["succeeded"] == 1
        assert summary.skipped_failed == 1
        assert summary.exit_code == 1
        async with BulkRunner(doku, customer_number=CUSTOMER, journal=db) as again:
            resumed = await again.run(items)
    assert resumed.counts["skipped"] == 2
    assert resumed.exit_code == 1
    assert sim.transfer_count(items[1].reference) == 0


async def test_changed_details_for_a_journaled_reference_are_never_paid(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    """Same reference, other amount or account than the journal holds: not paid again, and
    not reported as succeeded or as a plain failure of the earlier payment."""
    db = tmp_path / "run.db"
    original = plain(0)
    async with client_for(sim, timeouts=TIMEOUTS) as doku:
        async with BulkRunner(doku, customer_number=CUSTOMER, journal=db) as runner:
            await runner.run([original])
        changed = payout_item(
            reference=original.reference,
            bank_code=original.bank_code,
            account_number=original.account_number,
            account_name=original.account_name,
            amount="999.00",
        )
        async with BulkRunner(doku, customer_number=CUSTOMER, journal=db) as runner:
            [result] = [r async for r in runner.results([changed])]
    assert result.status == "failed"  # not paid with these details (the reference is taken)
    assert "other details" in result.message
    assert sim.transfer_count(original.reference) == 1
    assert Journal(db).get(original.reference).state == "succeeded"  # type: ignore[union-attr]
