"""``doku-async payouts run|resume``: pay a file through the bulk runner, journaled, then tell
the truth about the money for the whole journal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

from .._client import DokuClient
from .._exceptions import ConfigurationError
from ..bulk import (
    BulkRunner,
    BulkSummary,
    Journal,
    PayoutItem,
    PlanSource,
    ResultWriter,
    read_payout_file,
)
from ._common import EXIT_INTERRUPTED, JournalFailure, before_sending, journal_error, open_journal
from ._progress import ProgressPrinter
from ._stopped import Results, stopped_on_journal_error
from ._summary import report_journal, worse


async def run_command(args: argparse.Namespace) -> int:
    """Run ``payouts run`` or ``payouts resume``; returns the exit code."""
    source: PlanSource | None = None
    items: list[PayoutItem] = []
    total = Decimal("0.00")
    if args.action == "run":
        payouts = read_payout_file(args.csv)  # the whole file, before anything is sent
        items, total = payouts.items, payouts.total
        source = PlanSource(payouts.rows, payouts.sha256, payouts.name)
    elif not Path(args.journal).is_file():  # noqa: ASYNC240 - one stat before starting
        raise ConfigurationError(f"no journal at {args.journal}")
    journal = open_journal(args)
    try:
        items, total, customer = _prepare(args, journal, items, total, source)
        runner, summary = await _pay(args, journal, items, total, customer)
        _print_summary(summary, args.journal)
        try:
            # The whole file's totals, from the journal (the single record), not this run's.
            journal_code = report_journal(journal, args.journal, out=args.out)
            journal.close()  # commits the last outcomes, checkpoints, releases the lock
        except sqlite3.Error as exc:
            raise JournalFailure(
                journal_error(
                    args.journal,
                    exc,
                    doing="write the last outcomes to",
                    sent="The results above (and in --out) are complete; a resume settles "
                    "the items whose outcome was not recorded through check status.",
                )
            ) from None
    finally:
        with contextlib.suppress(sqlite3.Error):  # after a failure: already reported
            journal.close()
    if runner.stopped:
        return EXIT_INTERRUPTED
    return worse(summary.exit_code, journal_code)


def _prepare(
    args: argparse.Namespace,
    journal: Journal,
    items: list[PayoutItem],
    total: Decimal,
    source: PlanSource | None,
) -> tuple[list[PayoutItem], Decimal, str]:
    """Plan the file (``run``) or check the journal's plan (``resume``); the items to run,
    their total still to pay, and the customer number. Nothing is sent."""
    try:
        if source is not None:
            journal.plan(items, source=source)  # one transaction, with the file's checksum
        else:
            journal.check_plan_complete()
            items = [entry.item for entry in journal.entries()]
            total = sum(
                (entry.item.amount for entry in journal.entries(exclude_final=True)),
                Decimal("0.00"),
            )
        customer = (
            args.customer_number
            or os.environ.get("DOKU_CUSTOMER_NUMBER")
            or journal.meta().get("customer_number")
        )
    except sqlite3.Error as exc:
        raise before_sending(args.journal, exc) from None
    if not customer:
        raise ConfigurationError(
            "set --customer-number or DOKU_CUSTOMER_NUMBER (the sender's phone)"
        )
    return items, total, customer


async def _pay(
    args: argparse.Namespace,
    journal: Journal,
    items: list[PayoutItem],
    total: Decimal,
    customer: str,
) -> tuple[BulkRunner, BulkSummary]:
    """Run the items through a :class:`BulkRunner`, with progress and the results file."""
    with contextlib.ExitStack() as resources:
        async with DokuClient.from_env() as doku:
            runner = BulkRunner(
                doku,
                customer_number=customer,
                concurrency=args.concurrency,
                rate=args.rate,
                journal=journal,
                wait_for_final=args.wait_final,
                poll_interval=args.poll_interval,
                check_balance=args.check_balance,
                agent_key=args.agent_key or os.environ.get("DOKU_AGENT_KEY"),
            )
            try:
                journal.set_meta(customer_number=customer)
            except sqlite3.Error as exc:
                raise before_sending(args.journal, exc) from None
            writer = Results(ResultWriter(args.out) if args.out else None)
            resources.callback(writer.close)
            printer = ProgressPrinter()
            resources.callback(printer.close)
            runner.progress = printer
            try:
                summary = await _run_with_sigint(runner, items, total, writer)
            except sqlite3.Error as exc:
                raise JournalFailure(
                    stopped_on_journal_error(args, journal, exc, items, writer, runner)
                ) from None
    return runner, summary


async def _run_with_sigint(
    runner: BulkRunner, items: list[PayoutItem], total: Decimal, writer: Results
) -> BulkSummary:
    """Run; the first Ctrl-C lets payouts in flight finish, the second aborts."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_sigint() -> None:
        if not runner.stopped:
            print(
                "\nstopping: finishing payouts in flight (Ctrl-C again to abort)", file=sys.stderr
            )
            runner.stop()
        elif main_task is not None:
            main_task.cancel()

    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        return await runner.run(items, total_amount=total, on_result=writer.write)
    except asyncio.CancelledError:
        runner.stop()
        return runner.summary
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)


def _print_summary(summary: BulkSummary, journal: str) -> None:
    c = summary.counts
    earlier = (
        f"; {summary.already_paid} already paid before this run: IDR "
        f"{summary.amount_already_paid:,}, not paid again"
        if summary.already_paid
        else ""
    )
    print(
        f"done: {summary.done} items in {summary.elapsed:.1f}s "
        f"({summary.throughput:,.0f}/s) - succeeded {c['succeeded']} "
        f"(IDR {summary.amount_paid:,}{earlier}), failed {c['failed']}, pending {c['pending']}, "
        f"unknown {c['unknown']}, skipped {c['skipped']}"
        + (f" ({summary.skipped_failed} failed earlier)" if summary.skipped_failed else "")
    )
