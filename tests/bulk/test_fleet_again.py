"""A shared run hands an item back to a runner that worked on it before (issue 16 review): the
claim makes it this runner's alone, so it is settled and paid, not reported "failed" as a
reference repeated in the input (which left it unsettled and, for an item left ``sending``,
made the runner claim and drop it again forever)."""

from __future__ import annotations

import asyncio

from helpers import client_for

from doku_async._pipeline import new_external_id
from doku_async.bulk import (
    BulkRunner,
    ItemResult,
    PlanSource,
    PostgresJournal,
    payout_item,
    run_shared,
)
from doku_async.testing import DokuSimulator

CUSTOMER = "628115678890"


async def test_an_item_handed_back_by_a_take_over_is_settled_and_paid(
    pg_url: str, sim: DokuSimulator
) -> None:
    item = payout_item(
        reference="AGAIN-001",
        bank_code="014",
        account_number="8000000001",
        account_name="DRIVER 1",
        amount="10000.50",
    )
    a = PostgresJournal(pg_url, run_id="again", owner="runner-a")
    b = PostgresJournal(pg_url, run_id="again", owner="runner-b")
    try:
        a.plan([item], source=PlanSource(1, "5" * 64))
        async with client_for(sim) as doku:
            runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=2, journal=a)
            # 1. a works on the item; its inquiry fails: nothing sent, "retry".
            sim.inject("account_inquiry", "error", status=500, times=20)
            first: list[ItemResult] = []
            await run_shared(runner, a, resume=True, on_result=first.append)
            assert [r.status for r in first] == ["failed"]
            assert a.get(item.reference).state == "retry"  # type: ignore[union-attr]
            sim.faults.clear()
            # 2. b resumes it, marks it and dies before sending (its lease runs out).
            assert len((await b.claim(10, resume=True))[0]) == 1
            await b.mark_sending_grouped(item, new_external_id())
            b._read(
                lambda c: c.execute(
                    "UPDATE doku_items SET lease_until = clock_timestamp() - interval '1 s' "
                    "WHERE run_id='again'"
                )
            )
            # 3. a runs again and takes it over: check status (not found), then paid once.
            second: list[ItemResult] = []
            await asyncio.wait_for(run_shared(runner, a, on_result=second.append), timeout=30)
        assert [r.status for r in second] == ["succeeded"], second
        assert a.get(item.reference).state == "succeeded"  # type: ignore[union-attr]
        assert sim.transfer_count(item.reference) == 1
    finally:
        a.close()
        b.close()
