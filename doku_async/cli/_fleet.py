"""The command line over a PostgreSQL journal shared by runners on several machines:
``payouts run FILE --journal postgresql://... --run-id R`` (plans the file once, then claims
items), ``payouts join R --journal postgresql://...`` (claims items of a planned run),
``payouts plan``, ``payouts resume postgresql://... --run-id R`` (any machine), ``payouts
reconcile`` and ``status`` and ``journal export`` with ``--run-id``, and ``journal migrate``.

The database's password never appears in what is printed: the URL is shown redacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shlex
import sqlite3
import sys
import time
from collections.abc import Sequence

from .._client import DokuClient
from .._exceptions import ConfigurationError
from ..bulk import (
    BulkRunner,
    BulkSummary,
    IncompletePlanError,
    Journal,
    JournalBackend,
    PayoutItem,
    PlanSource,
    PostgresJournal,
    ResultWriter,
    migrate_url,
    read_payout_file,
    run_shared,
)
from ..bulk._pgconn import redact_url
from ..bulk._storage import is_database_url
from ._caps import cap_problems
from ._common import (
    EXIT_INTERRUPTED,
    EXIT_INVALID_INPUT,
    JournalFailure,
    Refused,
    journal_error,
    open_journal,
)
from ._payouts import _print_summary
from ._stopped import Results, run_with_sigint
from ._summary import print_entry, report_journal, worse

__all__ = [
    "add_fleet_parsers",
    "fleet_command",
    "fleet_status",
    "is_database_url",
    "migrate_command",
    "open_any_journal",
]

JOIN_WAIT = 30.0
"""Seconds ``payouts join`` waits for the run to be planned."""
RUN_ID_HELP = "the run's id in a PostgreSQL journal (default: 'default')"


def add_fleet_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_run_options: object,
) -> None:
    """``payouts join`` and ``payouts plan``."""
    join = sub.add_parser("join", help="work on a run planned in a PostgreSQL journal")
    join.add_argument("run_id", help="the run's id")
    join.add_argument("--journal", required=True, help="postgresql://... (the shared journal)")
    if callable(add_run_options):
        add_run_options(join)
    plan = sub.add_parser("plan", help="plan a file into a PostgreSQL journal; send nothing")
    plan.add_argument("csv", help="the payout file")
    plan.add_argument("--journal", required=True, help="postgresql://... (the shared journal)")
    plan.add_argument("--run-id", default="default", help=RUN_ID_HELP)
    plan.set_defaults(lease=30.0, journal_retry=10.0)


def open_shared(
    url: str, run_id: str, lease: float = 30.0, retry_for: float = 3.0
) -> PostgresJournal:
    """Open a run of a PostgreSQL journal (exit 6 if it cannot be opened)."""
    if lease <= 0 or retry_for <= 0:
        raise ConfigurationError("--lease and --journal-retry: must be positive")
    if not run_id or len(run_id) > 200:
        raise ConfigurationError("--run-id: 1 to 200 characters")
    try:
        return PostgresJournal(url, run_id=run_id, lease=lease, retry_for=retry_for)
    except (sqlite3.Error, OSError) as exc:
        raise JournalFailure(
            journal_error(redact_url(url), exc, doing="open", sent="Nothing was sent by this run.")
        ) from None


def open_any_journal(args: argparse.Namespace) -> JournalBackend:
    """``args.journal``: a PostgreSQL run (``--run-id``) or a SQLite file (locked)."""
    if is_database_url(args.journal):
        # reconcile writes as it goes: a restarting server is waited for a while
        return open_shared(args.journal, args.run_id or "default", retry_for=30.0)
    journal: Journal = open_journal(args)
    return journal


def migrate_command(url: str) -> int:
    """``journal migrate URL``: bring the journal's schema up to date."""
    try:
        before, after = migrate_url(url)
    except (sqlite3.Error, OSError) as exc:
        print(f"journal error: {redact_url(url)}: {exc}", file=sys.stderr)
        return 6
    if before == after:
        print(f"the journal {redact_url(url)} is at schema version {after}; nothing to do")
    else:
        print(f"the journal {redact_url(url)}: schema version {before} -> {after}")
    return 0


def fleet_status(url: str, run_id: str, reference: str) -> None:
    """The journal's part of ``payouts status`` for a PostgreSQL run."""
    journal = open_shared(url, run_id)
    try:
        entry = journal.get(reference)
        events = journal.events(reference)
    finally:
        journal.close()
    print_entry(reference, journal.path, entry, events)


def _refuse_over_caps(args: argparse.Namespace, items: Sequence[PayoutItem]) -> None:
    """``--max-amount`` / ``--max-total`` refuse the run before anything is sent."""
    problems = cap_problems(
        items,
        max_amount=getattr(args, "max_amount", None),
        max_total=getattr(args, "max_total", None),
    )
    if problems:
        raise Refused([*problems, "Nothing was sent."], EXIT_INVALID_INPUT)


async def fleet_command(args: argparse.Namespace) -> int:
    """``payouts run|join|resume|plan`` over a PostgreSQL journal; the exit code."""
    run_id = args.run_id or "default"
    if getattr(args, "check_balance", False):
        raise ConfigurationError(
            "--check-balance is not supported with a PostgreSQL journal yet; nothing was sent"
        )
    if getattr(args, "dry_run", False):
        raise ConfigurationError(
            "--dry-run is not supported with a PostgreSQL journal yet: check the file with "
            "'doku-async payouts validate FILE'; nothing was sent"
        )
    source: PlanSource | None = None
    if args.action in ("run", "plan"):
        payouts = read_payout_file(args.csv)  # the whole file, before anything is sent
        source = PlanSource(payouts.rows, payouts.sha256, payouts.name)
        _refuse_over_caps(args, payouts.items)
    journal = open_shared(args.journal, run_id, args.lease, args.journal_retry)
    shown = journal.path
    try:
        try:
            if source is not None:
                new = journal.plan(payouts.items, source=source)  # once; the same file: no-op
                if args.action == "plan":
                    print(f"planned {new} new item(s) in {shown}")
                    return 0
            elif args.action == "join":
                await _plan_of(journal)
            else:
                journal.check_plan_complete()
            if source is None:  # join or resume: the caps hold for the plan in the journal
                _refuse_over_caps(args, [entry.item for entry in journal.entries()])
            customer = (
                args.customer_number
                or os.environ.get("DOKU_CUSTOMER_NUMBER")
                or journal.meta().get("customer_number")
            )
        except sqlite3.Error as exc:
            raise _failure(shown, exc, "plan or read") from None
        if not customer:
            raise ConfigurationError(
                "set --customer-number or DOKU_CUSTOMER_NUMBER (the sender's phone)"
            )
        runner, summary = await _pay(args, journal, customer)
        _print_summary(summary, shown)
        try:
            code = report_shared(journal, args.journal, run_id, out=args.out)
            journal.close()
        except sqlite3.Error as exc:
            raise _failure(shown, exc, "write the last outcomes to") from None
    finally:
        with contextlib.suppress(sqlite3.Error):
            journal.close()
    if runner.stopped:
        return EXIT_INTERRUPTED
    return worse(summary.exit_code, code)


async def _pay(
    args: argparse.Namespace, journal: PostgresJournal, customer: str
) -> tuple[BulkRunner, BulkSummary]:
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
            )
            try:
                journal.set_meta(customer_number=customer)
            except sqlite3.Error as exc:
                raise _failure(journal.path, exc, "write") from None
            writer = Results(ResultWriter(args.out) if args.out else None)
            resources.callback(writer.close)
            try:
                work = run_shared(
                    runner, journal, resume=args.action == "resume", on_result=writer.write
                )
                summary = await run_with_sigint(runner, work, writer)
            except sqlite3.Error as exc:
                raise JournalFailure(
                    [
                        *journal_error(
                            journal.path,
                            exc,
                            doing="write",
                            sent="Nothing was sent without its committed sending mark; "
                            "'payouts resume' (any machine) settles the items in doubt through "
                            "check status.",
                        )
                    ]
                ) from None
    return runner, summary


async def _plan_of(journal: PostgresJournal, wait: float = JOIN_WAIT) -> None:
    """The run's complete plan; a runner joining as the first one plans waits for it (up to
    ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            journal.check_plan_complete()
            return
        except IncompletePlanError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


def report_shared(journal: JournalBackend, url: str, run_id: str, *, out: str | None = None) -> int:
    """:func:`report_journal` for a PostgreSQL run: the commands it suggests carry
    ``--run-id`` (and the URL without its password)."""
    shown = redact_url(url)
    buffer = io.StringIO()
    code = report_journal(journal, shown, out=out, stream=buffer)
    quoted = shlex.quote(shown)
    with_run = f"{quoted} --run-id {shlex.quote(run_id)}"
    for line in buffer.getvalue().splitlines():
        if line.startswith("next:") or "journal export" in line:
            line = line.replace(quoted, with_run)
        print(line)
    return code


def _failure(shown: str, exc: sqlite3.Error, doing: str) -> JournalFailure:
    return JournalFailure(journal_error(shown, exc, doing=doing, sent="Nothing was sent."))
