"""``doku-async payouts reconcile JOURNAL``: follow DOKU after a run.

Asks check status for every journaled payout DOKU has not settled (accepted, pending, unknown,
sending) and for the succeeded ones inside the refund window, records what DOKU says in the
journal (an event each; states move only forward), prints what changed, and exits with the
code the whole journal calls for (0 only when every payout is confirmed paid).
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
from pathlib import Path

from .._client import DokuClient
from .._exceptions import ConfigurationError
from ..bulk import DEFAULT_REFUND_WINDOW, ReconcileChange, ReconcileReport, reconcile
from ..bulk._pgconn import redact_url
from ._common import JournalFailure, journal_error
from ._fleet import is_database_url, open_any_journal, report_shared
from ._summary import LIST_LIMIT, report_journal

DAY = 24 * 3600.0


def add_reconcile_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``payouts reconcile`` subcommand."""
    p = sub.add_parser(
        "reconcile",
        help="ask DOKU about every payout it may still change and record its answers",
        description="Check status for every payout accepted, pending, unknown or sending, and "
        "for succeeded ones younger than the refund window; the journal records each answer.",
    )
    p.add_argument("journal", help="the run's SQLite journal, or postgresql://...")
    p.add_argument("--run-id", default="default", help="the run's id in a PostgreSQL journal")
    p.add_argument(
        "--refund-window",
        type=float,
        default=DEFAULT_REFUND_WINDOW / DAY,
        metavar="DAYS",
        help="check succeeded payouts again for a refund while their success is younger than "
        "this (days; default 7: DOKU documents no refund deadline; 0 skips them)",
    )
    p.add_argument("--rate", type=float, help="requests per second (unpaced by default)")
    p.add_argument("--concurrency", type=int, default=8, help="check status calls in flight (8)")
    p.add_argument(
        "--break-lock",
        action="store_true",
        help="take over a journal lock another host left before its lease expired",
    )


class _Changes:
    """Prints each change as it is recorded, the first :data:`LIST_LIMIT` of them."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, change: ReconcileChange) -> None:
        self.count += 1
        if self.count <= LIST_LIMIT:
            detail = " ".join(filter(None, (change.code, change.message)))
            print(f"  {change.reference}: {change.before} -> {change.after}  {detail}")


async def reconcile_command(args: argparse.Namespace) -> int:
    """Run ``payouts reconcile``; returns the exit code."""
    if args.refund_window < 0:
        raise ConfigurationError("--refund-window: must be 0 or more days")
    shared = is_database_url(args.journal)
    if not shared and not Path(args.journal).is_file():  # noqa: ASYNC240 - one stat
        raise ConfigurationError(f"no journal at {args.journal}")
    journal = open_any_journal(args)
    shown = redact_url(args.journal)
    try:
        changes = _Changes()
        async with DokuClient.from_env() as doku:
            print(f"reconciling {shown} with DOKU (check status):")
            try:
                report = await reconcile(
                    doku,
                    journal,
                    refund_window=args.refund_window * DAY,
                    rate=args.rate,
                    concurrency=args.concurrency,
                    on_change=changes,
                )
            except sqlite3.Error as exc:
                raise _failure(shown, exc) from None
        _print_report(report)
        try:
            code = (
                report_shared(journal, args.journal, args.run_id)
                if shared
                else report_journal(journal, shown)
            )
            journal.close()
        except sqlite3.Error as exc:
            raise _failure(shown, exc) from None
    finally:
        with contextlib.suppress(sqlite3.Error):  # after a failure: already reported
            journal.close()
    return code


def _failure(path: str, exc: sqlite3.Error) -> JournalFailure:
    return JournalFailure(
        journal_error(
            path,
            exc,
            doing="write",
            sent="Reconcile sends no transfer; what DOKU said before the error is recorded. "
            "Fix the disk and run reconcile again.",
        )
    )


def _print_report(report: ReconcileReport) -> None:
    if report.changed > LIST_LIMIT:
        print(f"  and {report.changed - LIST_LIMIT} more changed")
    print(
        f"reconcile: asked about {report.checked + report.errors} payout(s): "
        f"{report.changed} changed, {report.not_found} not found at DOKU, "
        f"{report.errors} could not be checked"
    )
    for reference, error in report.failures[:LIST_LIMIT]:
        print(f"  check status failed for {reference}: {error}", file=sys.stderr)
