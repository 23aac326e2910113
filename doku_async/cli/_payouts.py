"""``doku-async payouts run|resume``: pay a file through the bulk runner, journaled, then tell
the truth about the money for the whole journal."""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
from decimal import Decimal

from .._client import DokuClient
from .._exceptions import AuthenticationError, ConfigurationError, DokuError
from ..bulk import BulkRunner, BulkSummary, Journal, PayoutItem, ResultWriter
from ._common import EXIT_INTERRUPTED, JournalFailure, before_sending, journal_error, open_journal
from ._preflight import Preflight, check_doku, check_local
from ._progress import progress_display
from ._resume import print_interrupted, resume_command
from ._stopped import Results, run_with_sigint, stopped_on_config, stopped_on_journal_error
from ._summary import report_journal, worse
from ._validate import validate_command


async def run_command(args: argparse.Namespace) -> int:
    """Run ``payouts run`` or ``payouts resume``; returns the exit code.

    Everything is checked before a new journal is created or anything is sent (the file, the
    caps, the settings, the credentials and, with ``--check-balance``, the balance): a run
    refused for those leaves no journal behind. An existing journal is opened (its lock, its
    plan) before DOKU is asked anything."""
    if getattr(args, "dry_run", False):
        return await validate_command(args)
    pf = check_local(args)
    if pf.problems:
        raise pf.refusal()  # nothing created, no request made
    assert pf.client is not None
    async with pf.client as doku:
        if not pf.journal_exists:
            await _check_doku(pf, args)
        journal = open_journal(args)
        try:
            items, total = _prepare(args, journal, pf)
            if pf.journal_exists:
                await _check_doku(pf, args)
            runner, summary, results = await _pay(args, doku, journal, items, total, pf)
            _print_summary(summary, args.journal, retry=results.retry)
            code = _report(args, journal, runner, summary, aborted=results.aborted)
        finally:
            with contextlib.suppress(sqlite3.Error):  # after a failure: already reported
                journal.close()
    return code


async def _check_doku(pf: Preflight, args: argparse.Namespace) -> None:
    """The credentials (a token) and, with ``--check-balance``, the balance; refuses."""
    await check_doku(pf, balance=args.check_balance)
    if pf.problems:
        raise pf.refusal(planned=pf.journal_exists)


def _report(
    args: argparse.Namespace,
    journal: Journal,
    runner: BulkRunner,
    summary: BulkSummary,
    *,
    aborted: bool = False,
) -> int:
    """The whole journal's totals, the payouts not confirmed paid, what to run next (after a
    Ctrl-C: the exact command that resumes); the exit code."""
    resume = resume_command(args)
    try:
        # The whole file's totals, from the journal (the single record), not this run's.
        journal_code = report_journal(journal, args.journal, out=args.out, resume=resume)
        in_flight = journal.totals().get("sending", (0, 0))[0] if aborted else 0
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
    if runner.stopped:
        print_interrupted(summary, resume, in_flight=in_flight)
        return EXIT_INTERRUPTED
    return worse(summary.exit_code, journal_code)


def _prepare(
    args: argparse.Namespace, journal: Journal, pf: Preflight
) -> tuple[list[PayoutItem], Decimal]:
    """Plan the file (``run``) or check the journal's plan (``resume``); the items to run and
    their total still to pay. Nothing is sent."""
    items, total = pf.items, pf.total
    try:
        if pf.source is not None:
            journal.plan(items, source=pf.source)  # one transaction, with the file's checksum
        else:
            journal.check_plan_complete()
            items = [entry.item for entry in journal.entries()]
            total = sum(
                (entry.item.amount for entry in journal.entries(exclude_final=True)),
                Decimal("0.00"),
            )
        assert pf.customer is not None
        journal.set_meta(customer_number=pf.customer)
    except sqlite3.Error as exc:
        raise before_sending(args.journal, exc) from None
    return items, total


async def _pay(
    args: argparse.Namespace,
    doku: DokuClient,
    journal: Journal,
    items: list[PayoutItem],
    total: Decimal,
    pf: Preflight,
) -> tuple[BulkRunner, BulkSummary, Results]:
    """Run the items through a :class:`BulkRunner`, with progress and the results file."""
    with contextlib.ExitStack() as resources:
        runner = BulkRunner(
            doku,
            customer_number=pf.customer or "",
            concurrency=args.concurrency,
            rate=args.rate,
            journal=journal,
            wait_for_final=args.wait_final,
            poll_interval=args.poll_interval,
        )  # the balance was checked before the journal was created
        writer = Results(ResultWriter(args.out) if args.out else None)
        resources.callback(writer.close)
        display = progress_display()
        resources.callback(display.close)
        runner.progress = display
        try:
            summary = await run_with_sigint(
                runner, runner.run(items, total_amount=total, on_result=writer.write), writer
            )
        except sqlite3.Error as exc:
            raise JournalFailure(
                stopped_on_journal_error(args, journal, exc, items, writer, runner)
            ) from None
        except (AuthenticationError, ConfigurationError) as exc:
            stopped: DokuError = exc  # the results file is closed first
        else:
            return runner, summary, writer
    raise stopped_on_config(
        args,
        journal,
        stopped,
        created=not pf.journal_exists,
        results=writer,
        resume=resume_command(args),
    ) from None


def _print_summary(summary: BulkSummary, journal: str, *, retry: int = 0) -> None:
    """This run's line, in the journal line's words: ``failed`` is final (nothing paid),
    ``retry`` nothing paid and safe to try again (``retry`` of the run's failures)."""
    c = summary.counts
    earlier = (
        f"; {summary.already_paid} already paid before this run: IDR "
        f"{summary.amount_already_paid:,}, not paid again"
        if summary.already_paid
        else ""
    )
    others = [
        f"{state} {count}"
        for state, count in (
            ("accepted", c.get("accepted", 0)),
            ("refunded", c.get("refunded", 0)),
            ("retry", retry),
        )
        if count
    ]
    print(
        f"this run: {summary.done} items in {summary.elapsed:.1f}s "
        f"({summary.throughput:,.0f}/s) - succeeded {c['succeeded']} "
        f"(IDR {summary.amount_paid:,}{earlier}), failed {c['failed'] - retry}, "
        + "".join(f"{part}, " for part in others)
        + f"pending {c['pending']}, unknown {c['unknown']}, skipped {c['skipped']}"
        + (f" ({summary.skipped_failed} failed earlier)" if summary.skipped_failed else "")
    )
