"""Issue 12 regressions on the SDK side: findings 1 (a paid reference reported "failed,
nothing paid"), 6 (Payout Link 409 after a lost answer), 7 (check status ``404xx01``) and 9
(a fresh ``X-EXTERNAL-ID`` where the money rule allows one)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import no_sleep

from doku_async import Clocks, DokuClient, RetryPolicy, Timeouts, TransactionStatus
from doku_async.bulk import BulkRunner, ItemResult, Journal, PayoutItem, payout_item
from doku_async.testing import DokuSimulator, SimulatorCredentials

CUSTOMER = "628115678890"


@pytest.fixture
async def doku(sim: DokuSimulator) -> AsyncIterator[DokuClient]:
    client = sim.client(
        retry=RetryPolicy(jitter=False),
        timeouts=Timeouts(connect=2.0, attempt=2.0, total=10.0),
        clocks=Clocks(sleep=no_sleep),
    )
    async with client:
        yield client


def _items(count: int, *, extra: Decimal = Decimal(0)) -> list[PayoutItem]:
    return [
        payout_item(
            reference=f"SELLER-{i:04d}",
            bank_code="014",
            account_number=f"80{i:06d}",
            account_name=f"Seller {i}",
            amount=Decimal(150_000 + i) + extra,
            line=i + 2,
        )
        for i in range(count)
    ]


async def test_finding1_rerun_after_lost_journal_with_corrected_amounts_reports_paid(
    sim: DokuSimulator, doku: DokuClient, tmp_path: Path
) -> None:
    """50 payees paid; the journal is lost; the file is re-run with amounts "corrected" by
    DOKU's 4,500 fee. Every reference is already paid at DOKU: each is recorded succeeded
    (never failed, never paid again) with the amount difference in its message."""
    first = _items(50)
    async with asyncio.timeout(30):
        summary = await BulkRunner(
            doku, customer_number=CUSTOMER, journal=Journal(tmp_path / "a.db")
        ).run(first)
    assert summary.counts.get("succeeded") == 50
    # The journal is lost: a fresh one, and amounts that include the fee.
    again = _items(50, extra=Decimal("4500"))
    results: list[ItemResult] = []
    async with asyncio.timeout(30):
        second = await BulkRunner(
            doku, customer_number=CUSTOMER, journal=Journal(tmp_path / "b.db")
        ).run(again, on_result=results.append)
    assert all(sim.transfer_count(i.reference) == 1 for i in first)
    assert second.counts.get("failed", 0) == 0
    assert second.counts.get("succeeded") == 50
    assert all("4500" not in r.message or "reconcile" in r.message for r in results)
    assert all("DOKU reports amount" in r.message for r in results)
    assert not any("nothing" in r.message for r in results)


async def test_finding7_check_status_404xx01_means_not_found_everywhere(
    creds: SimulatorCredentials,
) -> None:
    """DOKU's "Transaction Not Found" error answer (``404xx01``) and ``07`` mean the same."""
    async with DokuSimulator(credentials=creds) as sim:
        sim.inject("check_status", "error", status=404, response_code="4045301")
        async with sim.client(
            retry=RetryPolicy(jitter=False), clocks=Clocks(sleep=no_sleep)
        ) as doku:
            answer = await doku.kirim.check_status(original_partner_reference_no="NEVER-SENT")
    assert answer.transaction_status == TransactionStatus.NOT_FOUND
    assert answer.response_code == "4045301"
    assert answer.original_partner_reference_no == "NEVER-SENT"


async def test_finding7_resume_pays_an_item_check_status_reports_not_found_by_404(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    """An item marked as sending whose transfer never reached DOKU: on resume, check status
    answers ``4045301`` and the item is paid (once), not left unknown forever."""
    items = _items(1)
    journal_path = tmp_path / "run.db"
    async with DokuSimulator(credentials=creds) as sim:
        async with sim.client(
            retry=RetryPolicy(jitter=False), clocks=Clocks(sleep=no_sleep)
        ) as doku:
            # Answered 500 and never committed: sent, so in doubt (a dropped connection can
            # be seen before the request was written, which a busy machine made flaky).
            sim.inject("transfer_bank", "error", status=500, times=50)
            sim.inject("check_status", "error", status=503, times=50)
            async with asyncio.timeout(30):
                with closing(Journal(journal_path)) as journal:
                    summary = await BulkRunner(doku, customer_number=CUSTOMER, journal=journal).run(
                        items
                    )
            assert summary.counts.get("unknown") == 1  # in doubt: sent, outcome not settled
            sim.faults.clear()
            sim.inject("check_status", "error", status=404, response_code="4045301")
            results: list[ItemResult] = []
            async with asyncio.timeout(30):
                with closing(Journal(journal_path)) as journal:
                    await BulkRunner(doku, customer_number=CUSTOMER, journal=journal).run(
                        items, on_result=results.append
                    )
        assert [r.status for r in results] == ["succeeded"]
        assert sim.transfer_count(items[0].reference) == 1
