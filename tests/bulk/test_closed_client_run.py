"""An adversary's try at the closed-client change: the client is closed in the middle of a bulk
run with a journal while some transfers are unclear (dropped after DOKU committed them).

``ClientClosedError`` is now a usage error outside the transport branch; this checks it never
lets the runner record a transfer DOKU holds as "nothing paid", that the run ends instead of
hanging, and that a resume with a new client finishes the file paying nobody twice.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers import numbered_items

from doku_async import Clocks, RetryPolicy
from doku_async.bulk import BulkRunner, Journal
from doku_async.testing import DokuSimulator, SimulatorCredentials

NOTHING_PAID = {"planned", "retry", "failed"}


async def test_a_client_closed_mid_run_never_hides_a_payment_and_resume_pays_once(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    items = numbered_items(60, "CLOSED", cents="00")
    path = tmp_path / "run.db"

    async def no_sleep(_: float) -> None:
        await asyncio.sleep(0)

    async with asyncio.timeout(60), DokuSimulator(credentials=creds) as sim:
        sim.inject("transfer_bank", "drop_after_commit", times=6)  # unclear, yet paid
        sim.inject("check_status", "latency", delay=0.3, times=6)  # settling takes a while
        journal = Journal(path)
        doku = sim.client(retry=RetryPolicy(jitter=False), clocks=Clocks(sleep=no_sleep))
        runner = BulkRunner(doku, customer_number="628115678890", concurrency=8, journal=journal)
        seen = 0
        async for _ in runner.results(items):
            seen += 1
            if seen == 10:
                await doku.aclose()  # the service shuts its client down mid-run
        journal.close()

        first = Journal(path, lock=False)
        try:
            entries = {e.item.reference: e for e in first.entries()}
        finally:
            first.close()
        for reference, entry in entries.items():
            if sim.transfer_count(reference):
                # DOKU holds it: never recorded as nothing paid, whatever the client did.
                assert entry.state not in NOTHING_PAID, (reference, entry.state)
        assert any(not sim.transfer_count(r) for r in entries), "the close came too late to test"

        async with sim.client(retry=RetryPolicy(jitter=False)) as fresh:
            summary = await BulkRunner(fresh, customer_number="628115678890", journal=path).run(
                items
            )
        assert summary.counts.get("unknown", 0) == 0
        for it in items:
            assert sim.transfer_count(it.reference) == 1, it.reference  # paid, and only once
        final = Journal(path, lock=False)
        try:
            assert {e.state for e in final.entries()} == {"succeeded"}
        finally:
            final.close()
