"""What the ``doku-async`` commands share: exit codes and journal failures."""

from __future__ import annotations

import argparse
import sqlite3

from ..bulk import BulkProgress, Journal

EXIT_INVALID_INPUT = 4
EXIT_CONFIG = 5
EXIT_JOURNAL = 6
EXIT_JOURNAL_IN_USE = 7
EXIT_INTERRUPTED = 130


class JournalFailure(Exception):
    """The journal failed (exit 6); ``lines`` say what is known and what to do."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[0])
        self.lines = lines


def journal_error(journal: str, exc: BaseException, *, doing: str, sent: str) -> list[str]:
    """The first lines of an exit-6 message."""
    return [
        f"journal error: could not {doing} the journal {journal}: {type(exc).__name__}: {exc}",
        "the record may be incomplete (a full disk, a corrupt or truncated file?). " + sent,
    ]


def before_sending(journal: str, exc: sqlite3.Error) -> JournalFailure:
    """The exit-6 failure of a journal that failed before anything was sent."""
    return JournalFailure(
        [
            *journal_error(
                journal,
                exc,
                doing="plan, read or write",
                sent="Nothing was sent by this run (planning is all or nothing).",
            ),
            CORRUPT_ADVICE,
        ]
    )


CORRUPT_ADVICE = (
    "Restore the journal from a backup ('doku-async journal backup' makes one); without one, "
    "'doku-async payouts status REFERENCE' asks DOKU about each reference, and a new run of "
    "the same file over a new journal reports references DOKU already paid as 'already paid "
    "before this run' instead of paying them again."
)


def open_journal(args: argparse.Namespace) -> Journal:
    """Open ``args.journal`` with its lock (exit 6 if it cannot be opened)."""
    try:
        return Journal(args.journal, break_lock=args.break_lock)
    except (sqlite3.Error, OSError) as exc:
        raise JournalFailure(
            [
                *journal_error(
                    args.journal, exc, doing="open", sent="Nothing was sent by this run."
                ),
                CORRUPT_ADVICE,
            ]
        ) from None


class Refused(Exception):
    """The command refused to start (nothing sent); ``lines`` say why, ``code`` is the exit
    code (4 for the input, 5 for the configuration)."""

    def __init__(self, lines: list[str], code: int) -> None:
        super().__init__(lines[0] if lines else "refused")
        self.lines = lines
        self.code = code


def counts_text(p: BulkProgress) -> str:
    """``ok 197  failed 2  ...  1,234/s``: succeeded always, the other counts when not zero."""
    rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
    others = (
        ("accepted", p.accepted),
        ("pending", p.pending),
        ("failed", p.failed),
        ("refunded", p.refunded),
        ("unknown", p.unknown),
        ("skipped", p.skipped),
    )
    parts = [f"ok {p.succeeded}", *(f"{name} {count}" for name, count in others if count)]
    return "  ".join([*parts, f"{rate:,.0f}/s"])
