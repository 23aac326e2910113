"""The ``doku-async`` command line (also ``python -m doku_async``).

Exit codes: 0 everything paid; 1 some items failed (nothing paid for them); 3 some items are
pending or of unknown outcome (resume later); 4 refused before sending anything (invalid input,
or a balance too low for --check-balance);
5 configuration or credentials are missing or rejected; 130 interrupted (journal consistent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from .._client import DokuClient
from .._exceptions import AuthenticationError, ConfigurationError, DokuError
from ..bulk import (
    BulkRunner,
    BulkSummary,
    CsvInputError,
    Journal,
    PayoutItem,
    PreflightError,
    ResultWriter,
    read_payouts,
)
from ._progress import ProgressPrinter

EXIT_INVALID_INPUT = 4
EXIT_CONFIG = 5
EXIT_INTERRUPTED = 130

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="doku-async",
        description="DOKU payouts from the command line. Credentials come from DOKU_* "
        "environment variables (DOKU_CLIENT_ID, DOKU_CLIENT_SECRET, DOKU_PRIVATE_KEY or "
        "DOKU_PRIVATE_KEY_PATH, DOKU_BASE_URL or DOKU_ENVIRONMENT).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    payouts = commands.add_parser("payouts", help="bulk payouts through Kirim DOKU")
    sub = payouts.add_subparsers(dest="action", required=True)

    run = sub.add_parser("run", help="pay every row of a CSV file")
    run.add_argument(
        "csv", help="columns: reference,bank_code,account_number,account_name,amount[,remark]"
    )
    run.add_argument("--journal", required=True, help="SQLite journal (created or resumed)")
    _add_run_options(run)

    resume = sub.add_parser("resume", help="finish a run from its journal")
    resume.add_argument("journal", help="the run's SQLite journal")
    _add_run_options(resume)

    status = sub.add_parser("status", help="the latest status of one payout")
    status.add_argument("reference", help="the payout's reference (partnerReferenceNo)")
    status.add_argument("--journal", help="also show what the journal recorded")

    demo = commands.add_parser("demo", help="a bulk payout on the embedded simulator")
    demo.add_argument("--items", type=int, default=1000, help="number of payouts (1000)")
    demo.add_argument("--concurrency", type=int, default=32, help="workers (32)")
    return parser


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="write per-item results to this CSV")
    p.add_argument("--concurrency", type=int, default=32, help="workers (32)")
    p.add_argument("--rate", type=float, help="requests per second (unpaced by default)")
    p.add_argument("--customer-number", help="sender phone 62... (or DOKU_CUSTOMER_NUMBER)")
    p.add_argument("--agent-key", help="agent key for --check-balance (or DOKU_AGENT_KEY)")
    p.add_argument("--check-balance", action="store_true", help="refuse if the balance is short")
    p.add_argument("--wait-final", action="store_true", help="poll until each payout is final")
    p.add_argument(
        "--poll-interval", type=float, default=10.0, help="seconds between final-status polls"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from ._demo import main as demo_main

        return demo_main(args.items, args.concurrency)
    try:
        return asyncio.run(_payouts(args))
    except CsvInputError as exc:
        print(exc.message, file=sys.stderr)
        print("Nothing was sent.", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except PreflightError as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except (ConfigurationError, AuthenticationError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print(
            "interrupted; the journal is consistent: resume with 'payouts resume'", file=sys.stderr
        )
        return EXIT_INTERRUPTED


async def _payouts(args: argparse.Namespace) -> int:
    if args.action == "status":
        return await _status(args)
    if args.action == "run":
        items, total = read_payouts(args.csv)  # the whole file, before anything is sent
    elif not Path(args.journal).is_file():  # noqa: ASYNC240 - one stat before starting
        raise ConfigurationError(f"no journal at {args.journal}")
    with contextlib.ExitStack() as resources:
        journal = Journal(args.journal)
        resources.callback(journal.close)
        if args.action == "run":
            journal.plan(items)
        else:
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
        if not customer:
            raise ConfigurationError(
                "set --customer-number or DOKU_CUSTOMER_NUMBER (the sender's phone)"
            )
        agent_key = args.agent_key or os.environ.get("DOKU_AGENT_KEY")
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
                agent_key=agent_key,
            )
            journal.set_meta(customer_number=customer)
            writer = ResultWriter(args.out) if args.out else None
            if writer is not None:
                resources.callback(writer.close)
            printer = ProgressPrinter()
            resources.callback(printer.close)
            runner.progress = printer
            summary = await _run_with_sigint(runner, items, total, writer)
    _print_summary(summary, args.journal)
    if runner.stopped:
        return EXIT_INTERRUPTED
    return summary.exit_code


async def _run_with_sigint(
    runner: BulkRunner, items: list[PayoutItem], total: Decimal, writer: ResultWriter | None
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
        return await runner.run(
            items, total_amount=total, on_result=writer.write if writer is not None else None
        )
    except asyncio.CancelledError:
        runner.stop()
        return runner.summary
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)


def _print_summary(summary: BulkSummary, journal: str) -> None:
    c = summary.counts
    print(
        f"done: {summary.done} items in {summary.elapsed:.1f}s "
        f"({summary.throughput:,.0f}/s) - succeeded {c['succeeded']} "
        f"(IDR {summary.amount_paid:,}), failed {c['failed']}, pending {c['pending']}, "
        f"unknown {c['unknown']}, skipped {c['skipped']}"
        + (f" ({summary.skipped_failed} failed earlier)" if summary.skipped_failed else "")
    )
    if c["unknown"] or c["pending"]:
        print(f"some outcomes are open: run 'doku-async payouts resume {journal}' later")


async def _status(args: argparse.Namespace) -> int:
    if args.journal:
        if not Path(args.journal).is_file():  # noqa: ASYNC240 - one stat
            raise ConfigurationError(f"no journal at {args.journal}")
        journal = Journal(args.journal)
        try:
            entry = journal.get(args.reference)
        finally:
            journal.close()
        if entry is None:
            print(f"journal: {args.reference} is not in {args.journal}")
        else:
            print(
                f"journal: {entry.state} code={entry.code or '-'} external_id="
                f"{entry.external_id or '-'} reference_no={entry.reference_no or '-'}"
            )
    async with DokuClient.from_env() as doku:
        try:
            status = await doku.kirim.check_status(original_partner_reference_no=args.reference)
        except DokuError as exc:
            print(f"DOKU: check status failed: {exc}", file=sys.stderr)
            return 3
    print(
        f"DOKU: {status.transaction_status} ({status.status_description}) "
        f"reference_no={status.original_reference_no or '-'}"
    )
    return (
        0
        if status.transaction_status == "00"
        else 1
        if status.transaction_status in ("04", "05", "06", "07")
        else 3
    )
