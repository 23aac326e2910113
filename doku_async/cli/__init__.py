"""The ``doku-async`` command line (also ``python -m doku_async``).

Exit codes:

``payouts run``, ``resume`` and ``reconcile`` end with the totals of the whole journal (every
item of the file, whichever run settled it), list the payouts not confirmed paid and print the
command to run next. Their exit code tells the truth about the money, for the whole journal:

* ``0`` every item confirmed paid by DOKU (items DOKU had already paid before this run
  included);
* ``1`` some items failed or were refunded (nothing paid for them, or the money came back), now
  or in an earlier run, or are not paid yet;
* ``3`` some items are accepted, pending, unknown or were being sent: DOKU has not settled
  them (``payouts reconcile`` follows them);
* ``4`` refused before sending anything: invalid input, a row over ``--max-amount`` or a
  total over ``--max-total``, a balance too low for ``--check-balance``, a journal planned
  from another file, or a journal whose plan is incomplete (``payouts run`` again with the
  same file completes it);
* ``5`` configuration or credentials are missing or rejected;
* ``6`` journal error: the journal could not be opened, read or written (a full disk, a
  corrupt file), so the record may be incomplete. Money may have moved: the items in doubt
  (sent, outcome not recorded) are listed, and ``--out`` lists every item;
* ``7`` the journal is in use by another process (its pid, host and start are named); nothing
  was sent. ``--break-lock`` takes over a lock left by another host before its lease expired;
* ``130`` interrupted by Ctrl-C (journal consistent): what this run did and the exact
  ``payouts resume`` command (same journal and options) are printed.

A reader of standard output or error that goes away (``| head``, a ``tee`` killed by Ctrl-C)
never stops a payout run: it keeps paying and journaling, and stops writing to that stream
(exit codes as above). ``journal export`` to a closed pipe stops quietly with ``141``.

A run refused with ``4`` or ``5`` creates no journal (nor lock file): everything is checked
before. ``payouts validate FILE`` (and ``payouts run --dry-run``) prints every check (the file,
the caps, the configuration, the credentials, the balance) and sends no transfer: ``0`` ready,
``4`` the file, a cap or the balance refuses the run, ``5`` the configuration.

``doku-async journal backup JOURNAL DEST`` copies a journal, even one a run is using, into one
consistent file; ``doku-async journal export JOURNAL`` writes its items as CSV or JSON lines.

A ``postgresql://`` URL in place of the journal selects the PostgreSQL journal shared by runners
on several machines (``--run-id``; ``payouts join``, ``payouts plan``, ``journal migrate``): see
:mod:`._fleet`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .._client import DokuClient
from .._exceptions import AuthenticationError, ConfigurationError, DokuError
from .._version import __version__
from ..bulk import (
    CsvInputError,
    IncompletePlanError,
    Journal,
    JournalLockedError,
    PlanMismatchError,
    PreflightError,
)
from ._caps import add_cap_options
from ._common import (
    CORRUPT_ADVICE,
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_INVALID_INPUT,
    EXIT_JOURNAL,
    EXIT_JOURNAL_IN_USE,
    JournalFailure,
    Refused,
    journal_error,
)
from ._fleet import (
    RUN_ID_HELP,
    add_fleet_parsers,
    fleet_command,
    fleet_status,
    is_database_url,
    migrate_command,
)
from ._journal import journal_command
from ._payouts import _print_summary as _print_summary  # used by the tests
from ._payouts import run_command
from ._preflight import cli_advice, credential_problem
from ._reconcile import add_reconcile_parser, reconcile_command
from ._safeio import safe_std_streams
from ._summary import print_entry
from ._validate import add_validate_parser, validate_command

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="doku-async",
        description="DOKU payouts from the command line. Credentials come from DOKU_* "
        "environment variables (DOKU_CLIENT_ID, DOKU_CLIENT_SECRET, DOKU_PRIVATE_KEY or "
        "DOKU_PRIVATE_KEY_PATH, DOKU_BASE_URL or DOKU_ENVIRONMENT).",
    )
    parser.add_argument("--version", action="version", version=f"doku-async {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    payouts = commands.add_parser("payouts", help="bulk payouts through Kirim DOKU")
    sub = payouts.add_subparsers(dest="action", required=True)

    run = sub.add_parser("run", help="pay every row of a CSV file")
    run.add_argument(
        "csv", help="columns: reference,bank_code,account_number,account_name,amount[,remark]"
    )
    run.add_argument(
        "--journal",
        required=True,
        help="SQLite journal (created or resumed), or postgresql://... shared by several runners",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="check everything as 'validate' does; send nothing"
    )
    _add_run_options(run)

    resume = sub.add_parser("resume", help="finish a run from its journal")
    resume.add_argument("journal", help="the run's SQLite journal, or postgresql://...")
    _add_run_options(resume)

    add_validate_parser(sub)

    add_reconcile_parser(sub)
    add_fleet_parsers(sub, _add_run_options)

    status = sub.add_parser("status", help="the latest status of one payout")
    status.add_argument("reference", help="the payout's reference (partnerReferenceNo)")
    status.add_argument("--journal", help="also show what the journal recorded, and why")
    status.add_argument("--run-id", default="default", help=RUN_ID_HELP)

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
    export.add_argument("--run-id", default="default", help=RUN_ID_HELP)
    migrate = jsub.add_parser("migrate", help="bring a PostgreSQL journal's schema up to date")
    migrate.add_argument("url", help="postgresql://...")

    demo = commands.add_parser("demo", help="a bulk payout on the embedded simulator")
    demo.add_argument("--items", type=int, default=1000, help="number of payouts (1000)")
    demo.add_argument("--concurrency", type=int, default=32, help="workers (32)")
    return parser


def _add_run_options(p: argparse.ArgumentParser) -> None:
    add_cap_options(p)
    p.add_argument("--out", help="write per-item results to this CSV")
    p.add_argument("--concurrency", type=int, default=32, help="workers (32)")
    p.add_argument("--rate", type=float, help="requests per second (unpaced by default)")
    p.add_argument("--customer-number", help="sender phone 62... (or DOKU_CUSTOMER_NUMBER)")
    p.add_argument("--agent-key", help="agent key for --check-balance (or DOKU_AGENT_KEY)")
    p.add_argument("--check-balance", action="store_true", help="refuse if the balance is short")
    p.add_argument("--wait-final", action="store_true", help="poll until each payout is final")
    p.add_argument("--run-id", default="default", help=RUN_ID_HELP)
    p.add_argument(
        "--journal-retry",
        type=float,
        default=60.0,
        help="PostgreSQL journal: seconds a lost "
        "connection is retried (the run pauses) before the run stops (60)",
    )
    p.add_argument(
        "--lease",
        type=float,
        default=30.0,
        help="PostgreSQL journal: seconds an item's claim "
        "lasts without a heartbeat; a dead runner's items are taken over after it (30)",
    )
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
        if args.command == "journal" and args.action == "migrate":
            return migrate_command(args.url)
        if args.command == "journal":
            return journal_command(args)
        with safe_std_streams():  # a closed output pipe never stops the money
            return _run_payouts(args)


def _run_payouts(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_payouts(args))
    except CsvInputError as exc:
        print(cli_advice(exc.message), file=sys.stderr)
        print("Nothing was sent.", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except (PreflightError, PlanMismatchError, IncompletePlanError) as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AuthenticationError as exc:  # DOKU's answer, not the request's random references
        for line in credential_problem(exc, token_issued=None):
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    except Refused as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return exc.code
    except JournalLockedError as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return EXIT_JOURNAL_IN_USE
    except JournalFailure as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_JOURNAL
    except KeyboardInterrupt:
        print(
            "interrupted before or after the payouts (none was in flight); the journal, if "
            "created, is consistent: run the same command again to continue",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


@contextlib.contextmanager
def _log_to_stderr() -> Iterator[None]:
    """The SDK's warnings and errors on stderr, one line each (no traceback), unless the
    application configured logging itself."""
    if logging.getLogger().handlers:
        yield
        return
    handler = _Stderr()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_OneLine("%(levelname)s: %(message)s"))
    logger = logging.getLogger("doku_async")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current ``sys.stderr``, which a progress bar may redirect while it is
    drawn (so a warning shows above the bar instead of breaking it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _OneLine(logging.Formatter):
    def formatException(self, ei: object) -> str:
        return ""


async def _payouts(args: argparse.Namespace) -> int:
    if args.action == "status":
        return await _status(args)
    if args.action == "reconcile":
        return await reconcile_command(args)
    if args.action == "validate":
        return await validate_command(args)
    if args.action in ("join", "plan") or is_database_url(args.journal):
        return await fleet_command(args)
    return await run_command(args)


async def _status(args: argparse.Namespace) -> int:
    if args.journal and is_database_url(args.journal):
        fleet_status(args.journal, args.run_id, args.reference)
    elif args.journal:
        if not Path(args.journal).is_file():  # noqa: ASYNC240 - one stat
            raise ConfigurationError(f"no journal at {args.journal}")
        try:
            journal = Journal(args.journal, lock=False)  # read only: a run may hold it
            try:
                entry = journal.get(args.reference)
                events = journal.events(args.reference)
            finally:
                journal.close()
        except sqlite3.Error as exc:
            raise JournalFailure(
                [
                    *journal_error(args.journal, exc, doing="read", sent="Nothing was sent."),
                    CORRUPT_ADVICE,
                ]
            ) from None
        print_entry(args.reference, args.journal, entry, events)
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
