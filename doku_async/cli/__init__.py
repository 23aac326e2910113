"""The ``doku-async`` command line (also ``python -m doku_async``).

Exit codes:

* ``0`` everything paid (items DOKU had already paid before this run included);
* ``1`` some items failed (nothing paid for them), now or in an earlier run;
* ``3`` some items are pending or of unknown outcome (resume later);
* ``4`` refused before sending anything: invalid input, a balance too low for
  ``--check-balance``, a journal planned from another file, or a journal whose plan is
  incomplete (``payouts run`` again with the same file completes it);
* ``5`` configuration or credentials are missing or rejected;
* ``6`` journal error: the journal could not be opened, read or written (a full disk, a
  corrupt file), so the record may be incomplete. Money may have moved: the items in doubt
  (sent, outcome not recorded) are listed, and ``--out`` lists every item;
* ``7`` the journal is in use by another process (its pid, host and start are named); nothing
  was sent. ``--break-lock`` takes over a lock left by another host before its lease expired;
* ``130`` interrupted (journal consistent).

``doku-async journal backup JOURNAL DEST`` copies a journal, even one a run is using, into one
consistent file; ``doku-async journal export JOURNAL`` writes its items as CSV or JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from .._client import DokuClient
from .._exceptions import AuthenticationError, ConfigurationError, DokuError
from ..bulk import (
    FINAL_STATES,
    IN_DOUBT_STATES,
    BulkRunner,
    BulkSummary,
    CsvInputError,
    IncompletePlanError,
    ItemResult,
    Journal,
    JournalLockedError,
    PayoutItem,
    PlanMismatchError,
    PlanSource,
    PreflightError,
    ResultWriter,
    backup_journal,
    read_payout_file,
)
from ._progress import ProgressPrinter

EXIT_INVALID_INPUT = 4
EXIT_CONFIG = 5
EXIT_JOURNAL = 6
EXIT_JOURNAL_IN_USE = 7
EXIT_INTERRUPTED = 130

JOURNAL_COLUMNS = (
    "line",
    "reference",
    "state",
    "amount",
    "bank_code",
    "account_number",
    "account_name",
    "remark",
    "external_id",
    "reference_no",
    "code",
    "message",
)


class _JournalFailure(Exception):
    """The journal failed (exit 6); ``lines`` say what is known and what to do."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[0])
        self.lines = lines


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

    journal = commands.add_parser("journal", help="back up or export a run's journal")
    jsub = journal.add_subparsers(dest="action", required=True)
    backup = jsub.add_parser(
        "backup", help="copy a journal (even during a run) into one consistent file"
    )
    backup.add_argument("journal", help="the run's SQLite journal")
    backup.add_argument("dest", help="the copy to write (must not exist)")
    export = jsub.add_parser("export", help="write the journal's items as CSV or JSON lines")
    export.add_argument("journal", help="the run's SQLite journal")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="csv (default)")
    export.add_argument("--out", help="write here instead of standard output")

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
    p.add_argument(
        "--break-lock",
        action="store_true",
        help="take over a journal lock another host left before its lease expired (only "
        "when that host's run is certainly over)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from ._demo import main as demo_main

        return demo_main(args.items, args.concurrency)
    with _log_to_stderr():
        if args.command == "journal":
            return _journal_command(args)
        return _run_payouts(args)


def _run_payouts(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_payouts(args))
    except CsvInputError as exc:
        print(exc.message, file=sys.stderr)
        print("Nothing was sent.", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except (PreflightError, PlanMismatchError, IncompletePlanError) as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except (ConfigurationError, AuthenticationError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except JournalLockedError as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return EXIT_JOURNAL_IN_USE
    except _JournalFailure as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_JOURNAL
    except KeyboardInterrupt:
        print(
            "interrupted; the journal is consistent: resume with 'payouts resume'", file=sys.stderr
        )
        return EXIT_INTERRUPTED


@contextlib.contextmanager
def _log_to_stderr() -> Iterator[None]:
    """The SDK's warnings and errors on stderr, one line each (no traceback), unless the
    application configured logging itself."""
    if logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_OneLine("%(levelname)s: %(message)s"))
    logger = logging.getLogger("doku_async")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


class _OneLine(logging.Formatter):
    def formatException(self, ei: object) -> str:
        return ""


def _journal_error(journal: str, exc: BaseException, *, doing: str, sent: str) -> list[str]:
    """The first lines of an exit-6 message."""
    return [
        f"journal error: could not {doing} the journal {journal}: {type(exc).__name__}: {exc}",
        "the record may be incomplete (a full disk, a corrupt or truncated file?). " + sent,
    ]


def _before_sending(journal: str, exc: sqlite3.Error) -> _JournalFailure:
    return _JournalFailure(
        [
            *_journal_error(
                journal,
                exc,
                doing="plan, read or write",
                sent="Nothing was sent by this run (planning is all or nothing).",
            ),
            _CORRUPT_ADVICE,
        ]
    )


_CORRUPT_ADVICE = (
    "Restore the journal from a backup ('doku-async journal backup' makes one); without one, "
    "'doku-async payouts status REFERENCE' asks DOKU about each reference, and a new run of "
    "the same file over a new journal reports references DOKU already paid as 'already paid "
    "before this run' instead of paying them again."
)


def _open_journal(args: argparse.Namespace) -> Journal:
    try:
        return Journal(args.journal, break_lock=args.break_lock)
    except (sqlite3.Error, OSError) as exc:
        raise _JournalFailure(
            [
                *_journal_error(
                    args.journal, exc, doing="open", sent="Nothing was sent by this run."
                ),
                _CORRUPT_ADVICE,
            ]
        ) from None


async def _payouts(args: argparse.Namespace) -> int:
    if args.action == "status":
        return await _status(args)
    source: PlanSource | None = None
    if args.action == "run":
        payouts = read_payout_file(args.csv)  # the whole file, before anything is sent
        items, total = payouts.items, payouts.total
        source = PlanSource(payouts.rows, payouts.sha256, payouts.name)
    elif not Path(args.journal).is_file():  # noqa: ASYNC240 - one stat before starting
        raise ConfigurationError(f"no journal at {args.journal}")
    journal = _open_journal(args)
    try:
        with contextlib.ExitStack() as resources:
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
                raise _before_sending(args.journal, exc) from None
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
                try:
                    journal.set_meta(customer_number=customer)
                except sqlite3.Error as exc:
                    raise _before_sending(args.journal, exc) from None
                writer = _Results(ResultWriter(args.out) if args.out else None)
                resources.callback(writer.close)
                printer = ProgressPrinter()
                resources.callback(printer.close)
                runner.progress = printer
                try:
                    summary = await _run_with_sigint(runner, items, total, writer)
                except sqlite3.Error as exc:
                    raise _JournalFailure(
                        _stopped_on_journal_error(args, journal, exc, items, writer, runner)
                    ) from None
        _print_summary(summary, args.journal)
        try:
            journal.close()  # commits the last outcomes, checkpoints, releases the lock
        except sqlite3.Error as exc:
            raise _JournalFailure(
                _journal_error(
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
    return summary.exit_code


class _Results:
    """The results file (if any) and which references it holds, so that a run stopped by a
    journal error can complete it."""

    def __init__(self, writer: ResultWriter | None) -> None:
        self.writer = writer
        self.written: set[str] = set()

    def write(self, result: ItemResult) -> None:
        self.written.add(result.reference)
        if self.writer is not None:
            self.writer.write(result)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _stopped_on_journal_error(
    args: argparse.Namespace,
    journal: Journal,
    exc: sqlite3.Error,
    items: list[PayoutItem],
    results: _Results,
    runner: BulkRunner,
) -> list[str]:
    """Complete the results file from the journal's last committed state, list the items in
    doubt, and say what to do (exit 6)."""
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
    summary = runner.summary
    c = summary.counts
    lines = _journal_error(
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


async def _run_with_sigint(
    runner: BulkRunner, items: list[PayoutItem], total: Decimal, writer: _Results
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
    if c["unknown"] or c["pending"]:
        print(f"some outcomes are open: run 'doku-async payouts resume {journal}' later")


async def _status(args: argparse.Namespace) -> int:
    if args.journal:
        if not Path(args.journal).is_file():  # noqa: ASYNC240 - one stat
            raise ConfigurationError(f"no journal at {args.journal}")
        try:
            journal = Journal(args.journal, lock=False)  # read only: a run may hold it
            try:
                entry = journal.get(args.reference)
            finally:
                journal.close()
        except sqlite3.Error as exc:
            raise _JournalFailure(
                [
                    *_journal_error(args.journal, exc, doing="read", sent="Nothing was sent."),
                    _CORRUPT_ADVICE,
                ]
            ) from None
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


# --------------------------------------------------------------------------- journal commands


def _journal_command(args: argparse.Namespace) -> int:
    if not Path(args.journal).is_file():
        print(f"configuration error: no journal at {args.journal}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.action == "backup":
            try:
                count = backup_journal(args.journal, args.dest)
            except FileExistsError as exc:
                print(f"refused: {exc}", file=sys.stderr)
                return EXIT_INVALID_INPUT
            print(f"backed up {count} items from {args.journal} to {args.dest} (one file)")
            return 0
        if args.out:
            with open(args.out, "w", newline="", encoding="utf-8") as out:
                count = _export(args.journal, out, args.format)
            print(f"exported {count} items to {args.out}", file=sys.stderr)
        else:
            _export(args.journal, sys.stdout, args.format)
    except (sqlite3.Error, OSError) as exc:
        for line in _journal_error(args.journal, exc, doing="read", sent="Nothing was sent."):
            print(line, file=sys.stderr)
        return EXIT_JOURNAL
    return 0


def _export(path: str, out: TextIO, fmt: str) -> int:
    """Write every journaled item (input order) to ``out``; returns how many."""
    journal = Journal(path, lock=False)  # read only: a run may hold it
    count = 0
    try:
        writer = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(JOURNAL_COLUMNS)
        for entry in journal.entries():
            item = entry.item
            row = (
                item.line,
                item.reference,
                entry.state,
                str(item.amount),
                item.bank_code,
                item.account_number,
                item.account_name,
                item.remark,
                entry.external_id,
                entry.reference_no,
                entry.code,
                entry.message,
            )
            if writer is not None:
                writer.writerow("" if v is None else v for v in row)
            else:
                out.write(json.dumps(dict(zip(JOURNAL_COLUMNS, row, strict=True))) + "\n")
            count += 1
    finally:
        journal.close()
    return count
