"""When the journal fails mid-run (exit 6): complete the results file from the journal's last
committed state, list the items in doubt, and say what to do."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sqlite3
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from .._exceptions import DokuError
from ..bulk import (
    FINAL_STATES,
    IN_DOUBT_STATES,
    BulkRunner,
    BulkSummary,
    ItemResult,
    JournalBackend,
    PayoutItem,
    ResultWriter,
)
from ._common import EXIT_CONFIG, Refused, journal_error
from ._preflight import credential_problem


class Results:
    """The results file (if any) and which references it holds, so that a run stopped by a
    journal error can complete it; how many failures are ``retry`` (nothing paid, may be tried
    again) and whether a second Ctrl-C aborted the payouts in flight."""

    def __init__(self, writer: ResultWriter | None) -> None:
        self.writer = writer
        self.written: set[str] = set()
        self.retry = 0
        self.aborted = False

    def write(self, result: ItemResult) -> None:
        self.written.add(result.reference)
        if result.status == "failed" and result.retryable:
            self.retry += 1  # journaled as 'retry', not 'failed'
        if self.writer is not None:
            self.writer.write(result)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run_with_sigint(
    runner: BulkRunner, work: Coroutine[Any, Any, BulkSummary], writer: Results
) -> BulkSummary:
    """Await ``work`` (the runner's run); the first Ctrl-C lets payouts in flight finish, the
    second aborts them (they stay ``sending`` in the journal, for ``payouts resume`` to settle
    through check status)."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_sigint() -> None:
        if not runner.stopped:
            print("stopping: finishing payouts in flight (Ctrl-C again to abort)", file=sys.stderr)
            runner.stop()
        elif main_task is not None and not writer.aborted:
            writer.aborted = True
            print(
                "aborting: payouts in flight stay 'sending' in the journal; 'payouts resume' "
                "settles them through check status before anything is sent again",
                file=sys.stderr,
            )
            main_task.cancel()

    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        return await work
    except asyncio.CancelledError:
        runner.stop()
        return runner.summary
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)


def stopped_on_journal_error(
    args: argparse.Namespace,
    journal: JournalBackend,
    exc: sqlite3.Error,
    items: list[PayoutItem],
    results: Results,
    runner: BulkRunner,
) -> list[str]:
    """Complete the results file from the journal's last committed state, list the items in
    doubt, and say what to do (exit 6)."""
    in_doubt, not_sent = _complete_results(journal, items, results)
    summary = runner.summary
    c = summary.counts
    lines = journal_error(
        args.journal,
        exc,
        doing="write",
        sent=f"The run stopped after {summary.done} item(s): succeeded {c['succeeded']} "
        f"(IDR {summary.amount_paid:,}), failed {c['failed']}, pending {c['pending']}, "
        f"unknown {c['unknown']}; {not_sent} not sent.",
    )
    if in_doubt:
        lines.append(
            f"{len(in_doubt)} item(s) in doubt (the transfer may have been sent, its outcome is "
            "not recorded): do not pay them again by hand"
        )
        lines.extend(
            f"  in doubt: {ref}" + (f" (X-EXTERNAL-ID {ext})" if ext else "")
            for ref, ext in in_doubt
        )
    else:
        lines.append("no item is in doubt: every transfer sent has its outcome above")
    lines.append(
        f"Fix the journal's disk, then 'doku-async payouts resume {args.journal}' settles the "
        "items in doubt through check status and pays the ones not sent."
    )
    if args.out:
        lines.append(f"{args.out} lists every item (in-doubt ones as 'unknown').")
    return lines


def _complete_results(
    journal: JournalBackend, items: list[PayoutItem], results: Results
) -> tuple[list[tuple[str, str]], int]:
    """Write a result for every item the run did not report; the items in doubt
    (reference, X-EXTERNAL-ID) and how many were not sent."""
    states: dict[str, tuple[str, str]] | None = {}
    try:
        states = {
            entry.item.reference: (entry.state, entry.external_id or "")
            for entry in journal.entries()
            if entry.item.reference not in results.written
        }
    except sqlite3.Error:
        states = None  # unreadable too: every unfinished item is in doubt
    in_doubt: list[tuple[str, str]] = []
    not_sent = 0
    for item in items:
        if item.reference in results.written:
            continue
        state, external_id = ("", "") if states is None else states.get(item.reference, ("", ""))
        if states is None or state in IN_DOUBT_STATES:
            in_doubt.append((item.reference, external_id))
            result = ItemResult(
                reference=item.reference,
                status="unknown",
                amount=item.amount,
                external_id=external_id or None,
                line=item.line,
                message="in doubt: the transfer may have been sent and its outcome is not "
                "recorded (journal error); settle it with 'payouts resume' or 'payouts status'",
            )
        elif state in FINAL_STATES:
            result = ItemResult(
                reference=item.reference,
                status="skipped",
                amount=item.amount,
                line=item.line,
                previous=state,
                message="settled by an earlier run (journal)",
            )
        else:
            not_sent += 1
            result = ItemResult(
                reference=item.reference,
                status="not sent",
                amount=item.amount,
                line=item.line,
                message="not sent: the run stopped on a journal error before this item",
            )
        results.write(result)
    return in_doubt, not_sent


def stopped_on_config(
    args: argparse.Namespace,
    journal: JournalBackend,
    exc: DokuError,
    *,
    created: bool,
    results: Results,
    resume: str,
) -> Refused:
    """DOKU refused the credentials (or the configuration) once the run had started (a wrong
    client secret shows at the first signed call): exit 5 with what to check. When nothing
    in the journal was sent and this run created it, the journal (and an empty results file)
    are removed, as for a run refused before it started; otherwise the exact resume command."""
    lines = credential_problem(exc, token_issued=True)
    try:
        untouched = set(journal.totals()) <= {"planned"}
    except sqlite3.Error:
        untouched = False  # unreadable: keep everything, the resume settles it
    if untouched and created:
        journal.close()
        for suffix in ("", "-wal", "-shm", ".lock"):
            with contextlib.suppress(OSError):
                Path(args.journal + suffix).unlink(missing_ok=True)
        if args.out and not results.written:
            with contextlib.suppress(OSError):
                Path(args.out).unlink(missing_ok=True)
        lines.append(
            "Nothing was sent. No journal was left behind (the plan this run wrote was "
            "removed): fix the configuration and run the same command again."
        )
    elif untouched:
        lines.append(
            f"Nothing was sent by this run; the journal {args.journal} keeps its plan. Fix the "
            f"configuration, then resume with:\n  {resume}"
        )
    else:
        lines.append(
            f"The run stopped; the journal {args.journal} records what was sent (a payout in "
            "flight stays 'sending' and is settled through check status, never sent again). "
            f"Fix the configuration, then resume with:\n  {resume}"
        )
    return Refused(lines, EXIT_CONFIG)
