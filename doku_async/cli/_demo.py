"""``doku-async demo``: a believable bulk payout on the embedded simulator, end to end."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from ..bulk import BulkRunner, PayoutItem, payout_item
from ..testing import DokuSimulator, SimulatorCredentials
from ..webhooks import Notification, create_webhook_app
from ._progress import ProgressPrinter

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


async def run_demo(count: int = 1000, concurrency: int = 32) -> int:
    """Start a webhook receiver and the simulator on loopback, pay ``count`` items, print a
    summary. Returns the process exit code."""
    creds = SimulatorCredentials.generate()
    received: list[Notification] = []

    async def on_notification(notification: Notification) -> None:
        received.append(notification)

    receiver = web.Application()
    receiver.add_subapp(
        "/doku/",
        create_webhook_app(
            agent_key=creds.agent_key,
            encryption_keys=creds.encryption_key,
            on_notification=on_notification,
        ),
    )
    runner = web.AppRunner(receiver, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook = f"http://127.0.0.1:{runner.addresses[0][1]}/doku/kirim"
    items = demo_items(count)
    total = sum((i.amount for i in items), Decimal("0.00"))
    expected_notifications = sum(
        1 for i in items if "12345" in i.account_number or i.account_number == "7746555134"
    )
    workdir = tempfile.TemporaryDirectory(prefix="doku-demo-")
    journal = Path(workdir.name) / "run.db"
    print(f"doku-async demo: paying {count} drivers (IDR {total:,}) through the embedded simulator")
    print(f"  webhook receiver: {hook}/unpaid and {hook}/refund")
    print(f"  journal: {journal}")
    try:
        async with (
            DokuSimulator(
                credentials=creds,
                unpaid_url=f"{hook}/unpaid",
                refund_url=f"{hook}/refund",
                notification_delay=0.2,
                retry_schedule=(0.1, 0.2, 0.4),
            ) as sim,
            sim.client() as doku,
        ):
            print(f"  simulator: {sim.base_url}")
            progress = ProgressPrinter()
            bulk = BulkRunner(
                doku,
                customer_number=CUSTOMER_NUMBER,
                concurrency=concurrency,
                journal=str(journal),
                wait_for_final=True,
                poll_interval=0.1,
                final_timeout=10,
                check_balance=True,
                agent_key=creds.agent_key,
                progress=progress,
            )
            started = time.perf_counter()
            async with bulk:
                summary = await bulk.run(items)
            progress.close()
            elapsed = time.perf_counter() - started
            try:
                await sim.wait_for_notifications(expected_notifications, timeout=10)
            except TimeoutError:
                print("  (some notifications did not arrive in time)")
            twice = sum(1 for i in items if sim.transfer_count(i.reference) > 1)
            requests = len(sim.requests)
            token_requests = sim.token_requests
            balance = sim.balance()
    finally:
        await runner.cleanup()
        workdir.cleanup()
    kinds = Counter(f"{n.kind} {n.status}" for n in received)
    c = summary.counts
    print()
    print("Summary")
    print(f"  items            {count}")
    print(f"  succeeded        {c['succeeded']}  (IDR {summary.amount_paid:,})")
    print(f"  failed           {c['failed']}  (UNPAID, then FAILED: nothing paid)")
    refunds = kinds.get("refund 40", 0)
    print(f"  refunded         {refunds}  (paid, then returned: reported by notification)")
    print(f"  pending          {c['pending']}")
    print(f"  unknown          {c['unknown']}")
    print(f"  paid twice       {twice}")
    print(
        f"  throughput       {count / elapsed:,.0f} items/s, {requests / elapsed:,.0f} requests/s"
    )
    print(
        "  latency per item "
        f"p50 {summary.percentile(50) * 1000:.1f} ms, p90 {summary.percentile(90) * 1000:.1f} ms, "
        f"p99 {summary.percentile(99) * 1000:.1f} ms"
    )
    print(f"  token requests   {token_requests}")
    print(
        "  notifications    "
        + ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()))
        + "  (50 success, 35 failed, 40 refunded)"
    )
    print(f"  final balance    IDR {balance:,}")
    return summary.exit_code if c["unknown"] or c["pending"] or twice else 0


def main(count: int, concurrency: int) -> int:
    """Run the demo."""
    return asyncio.run(run_demo(count, concurrency))
