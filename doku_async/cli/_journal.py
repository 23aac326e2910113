"""``doku-async journal backup|export``: a consistent copy of a journal, or its items as CSV or
JSON lines."""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys
from pathlib import Path
from typing import TextIO

from ..bulk import Journal, JournalBackend, PostgresJournal, backup_journal
from ..bulk._pgconn import redact_url
from ..bulk._storage import is_database_url
from ._common import EXIT_CONFIG, EXIT_INVALID_INPUT, EXIT_JOURNAL, journal_error
from ._safeio import mute

EXIT_PIPE_CLOSED = 141
"""``journal export`` to a reader that went away (``| head``): 128 + SIGPIPE, as a Unix tool
killed by SIGPIPE reports it; nothing else is printed."""

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


def journal_command(args: argparse.Namespace) -> int:
    """Run ``journal backup`` or ``journal export``; returns the exit code."""
    if args.action == "export" and is_database_url(args.journal):
        return _export_shared(args)
    if is_database_url(args.journal):
        print(
            f"configuration error: {redact_url(args.journal)} is a PostgreSQL journal: back it "
            "up with the database's own tools (pg_dump); 'journal backup' copies SQLite files",
            file=sys.stderr,
        )
        return EXIT_CONFIG
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
                count = export(args.journal, out, args.format)
            print(f"exported {count} items to {args.out}", file=sys.stderr)
        else:
            export(args.journal, sys.stdout, args.format)
            sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
    except BrokenPipeError:
        return _reader_gone()
    except (sqlite3.Error, OSError) as exc:
        for line in journal_error(args.journal, exc, doing="read", sent="Nothing was sent."):
            print(line, file=sys.stderr)
        return EXIT_JOURNAL
    return 0


def export(path: str, out: TextIO, fmt: str) -> int:
    """Write every journaled item (input order) to ``out``; returns how many."""
    journal = Journal(path, lock=False)  # read only: a run may hold it
    try:
        return write_entries(journal, out, fmt)
    finally:
        journal.close()


def write_entries(journal: JournalBackend, out: TextIO, fmt: str) -> int:
    """Write every item of ``journal`` (input order) to ``out``; returns how many."""
    count = 0
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
    return count


def _export_shared(args: argparse.Namespace) -> int:
    """``journal export postgresql://... --run-id R``."""
    shown = redact_url(args.journal)
    try:
        journal = PostgresJournal(args.journal, run_id=args.run_id, retry_for=3.0)
        try:
            if args.out:
                with open(args.out, "w", newline="", encoding="utf-8") as out:
                    count = write_entries(journal, out, args.format)
                print(f"exported {count} items to {args.out}", file=sys.stderr)
            else:
                write_entries(journal, sys.stdout, args.format)
                sys.stdout.flush()
        finally:
            journal.close()
    except BrokenPipeError:
        return _reader_gone()
    except (sqlite3.Error, OSError) as exc:
        for line in journal_error(shown, exc, doing="read", sent="Nothing was sent."):
            print(line, file=sys.stderr)
        return EXIT_JOURNAL
    return 0


def _reader_gone() -> int:
    """The reader of standard output went away (``| head``): stop quietly, like other Unix
    tools; the journal was only read."""
    mute(sys.stdout)
    return EXIT_PIPE_CLOSED
