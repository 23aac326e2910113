"""``doku-async demo``: a believable bulk payout on the embedded simulator, end to end."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from aiohttp import web

from .._client import DokuClient
from ..bulk import BulkRunner, BulkSummary, Journal, PayoutItem, payout_item
from ..testing import DokuSimulator, SimulatorCredentials
from ..webhooks import ConfirmedNotification, create_webhook_app, follow_journal
from ._progress import progress_display

CUSTOMER_NUMBER = "628115678890"


def demo_items(count: int) -> list[PayoutItem]:
    """``count`` payouts to drivers, with the sandbox's magic values sprinkled in:
    bank 002 + an account containing 12345 fails after UNPAID, another bank + 12345 succeeds
    after UNPAID, and account 7746555134 is refunded."""
    items: list[PayoutItem] = []
    for i in range(count):
        if i % 100 == 17:
            bank, account = "002", f"9{i:04d}12345"  # UNPAID, then FAILED
        elif i % 100 == 53:
            bank, account = "014", f"7{i:04d}12345"  # UNPAID, then SUCCESS
        elif i == count // 2:
            bank, account = "014", "7746555134"  # refunded
        else:
            bank, account = ("014", "008", "009", "451")[i % 4], f"{5_000_000_000 + i * 7919}"
        amount = Decimal(150_000 + (i * 2_500) % 350_000).quantize(Decimal("0.01"))
        items.append(
            payout_item(
                reference=f"DRV-2024-10-{i:06d}",
                bank_code=bank,
                account_number=account,
                account_name=f"Driver {i:06d}",
                amount=amount,
                remark="October earnings",
                line=i + 2,
            )
        )
    return items


async def _start_receiver(
    creds: SimulatorCredentials, doku: DokuClient, journal: Journal, seen: list[str]
) -> tuple[web.AppRunner, str]:
    """The webhook receiver in confirm mode: each notification is confirmed with check status
    and moves the journal's item to the state DOKU confirmed (``follow_journal``)."""

    async def then(confirmed: ConfirmedNotification) -> None:
        seen.append(f"{confirmed.kind} -> {confirmed.state}")

    receiver = web.Application()
    receiver.add_subapp(
        "/doku/",
        create_webhook_app(
            agent_key=creds.agent_key,
            encryption_keys=creds.encryption_key,
            confirm_with=doku,
            **follow_journal(journal, then),
        ),
    )
    runner = web.AppRunner(receiver, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/doku/kirim"


async def run_demo(count: int = 1000, concurrency: int = 32) -> int:
    """Pay ``count`` items through the simulator with a confirm-mode webhook receiver on
    loopback, let DOKU's notifications settle the journal, print a summary from the journal.
    Returns the process exit code (0 only when every payout is confirmed paid)."""
    creds = SimulatorCredentials.generate()
    items = demo_items(count)
    total = sum((i.amount for i in items), Decimal("0.00"))
    expected = sum(
        1 for i in items if "12345" in i.account_number or i.account_number == "7746555134"
    )
    workdir = tempfile.TemporaryDirectory(prefix="doku-demo-")
    journal = Journal(Path(workdir.name) / "run.db")
    seen: list[str] = []
    print(f"doku-async demo: paying {count} drivers (IDR {total:,}) through the embedded simulator")
    print(f"  journal: {journal.path}")
    try:
        async with (
            DokuSimulator(
                credentials=creds, notification_delay=0.2, retry_schedule=(0.1, 0.2, 0.4)
            ) as sim,
            sim.client() as doku,
        ):
            receiver, hook = await _start_receiver(creds, doku, journal, seen)
            sim.unpaid_url, sim.refund_url = f"{hook}/unpaid", f"{hook}/refund"
            print(f"  simulator: {sim.base_url}; webhook receiver (confirm mode): {hook}/...")
            try:
                summary, elapsed = await _pay(doku, items, journal, concurrency, creds)
                with contextlib.suppress(TimeoutError):
                    await sim.wait_for_notifications(expected, timeout=10)
                await sim.drain()
                facts = _Facts(
                    twice=sum(1 for i in items if sim.transfer_count(i.reference) > 1),
                    requests=len(sim.requests),
                    token_requests=sim.token_requests,
                    balance=sim.balance(),
                )
            finally:
                await receiver.cleanup()
        return _report(count, summary, elapsed, journal, facts, seen)
    finally:
        journal.close()
        workdir.cleanup()


class _Facts(NamedTuple):
    twice: int
    requests: int
    token_requests: int
    balance: Decimal


async def _pay(
    doku: DokuClient,
    items: list[PayoutItem],
    journal: Journal,
    concurrency: int,
    creds: SimulatorCredentials,
) -> tuple[BulkSummary, float]:
    progress = progress_display()
    bulk = BulkRunner(
        doku,
        customer_number=CUSTOMER_NUMBER,
        concurrency=concurrency,
        journal=journal,
        check_balance=True,
        agent_key=creds.agent_key,
        progress=progress,
    )
    started = time.perf_counter()
    summary = await bulk.run(items)
    progress.close()
    return summary, time.perf_counter() - started


def _report(
    count: int,
    summary: BulkSummary,
    elapsed: float,
    journal: Journal,
    facts: _Facts,
    seen: list[str],
) -> int:
    """The summary, from the journal: where the notifications (confirmed) left each payout."""
    states = journal.counts()
    print()
    print("Summary (from the journal, after DOKU's notifications were confirmed)")
    print(f"  items            {count}")
    for state, meaning in (
        ("succeeded", "DOKU confirmed the payout"),
        ("failed", "UNPAID, then FAILED: nothing paid"),
        ("refunded", "paid, then the money came back"),
        ("pending", "UNPAID: not final yet"),
        ("accepted", "accepted, not confirmed"),
        ("unknown", "may have been sent: settle with reconcile"),
    ):
        print(f"  {state:<16} {states.get(state, 0)}  ({meaning})")
    print(f"  paid twice       {facts.twice}")
    print(
        f"  throughput       {count / elapsed:,.0f} items/s, "
        f"{facts.requests / elapsed:,.0f} requests/s"
    )
    print(
        "  latency per item "
        f"p50 {summary.percentile(50) * 1000:.1f} ms, p90 {summary.percentile(90) * 1000:.1f} ms, "
        f"p99 {summary.percentile(99) * 1000:.1f} ms"
    )
    print(f"  token requests   {facts.token_requests}")
    kinds = Counter(seen)
    print("  notifications    " + ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())))
    print(f"  final balance    IDR {facts.balance:,}")
    unsettled = sum(states.get(s, 0) for s in ("pending", "accepted", "unknown"))
    if facts.twice or unsettled:
        return 3
    return 0


def main(count: int, concurrency: int) -> int:
    """Run the demo."""
    return asyncio.run(run_demo(count, concurrency))
