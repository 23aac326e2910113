"""The truth about the money, from the journal: totals for the whole file, the payouts not
confirmed paid, the command to run next, and the exit code that goes with them."""

from __future__ import annotations

import re
import shlex
import sys
from datetime import datetime
from typing import TextIO

from ..bulk import JournalBackend, JournalEntry, JournalEvent

__all__ = ["LIST_LIMIT", "exit_code_of", "print_events", "report_journal", "worse"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNSETTLED = 3

LIST_LIMIT = 20
"""How many payouts not confirmed paid are listed on screen."""

_OPEN = ("accepted", "pending", "unknown", "sending")
"""DOKU has not settled them (or the run died while sending): follow them (exit 3)."""
_NOT_PAID = ("failed", "refunded", "retry", "planned")
"""Nothing paid for them, or the money came back (exit 1)."""
_ORDER = ("succeeded", *_OPEN, *_NOT_PAID)
_INSUFFICIENT = re.compile(r"403\d\d14")
"""DOKU's "insufficient funds" response code (HTTP 403, case 14; xx is the service)."""


def exit_code_of(counts: dict[str, int]) -> int:
    """0 only when every item is confirmed paid; 3 while any is accepted, pending, unknown or
    sending; otherwise 1 when any failed, was refunded or is not paid yet (retry, planned)."""
    if any(counts.get(state) for state in _OPEN):
        return EXIT_UNSETTLED
    if any(counts.get(state) for state in _NOT_PAID):
        return EXIT_FAILED
    return EXIT_OK


def worse(a: int, b: int) -> int:
    """The more serious of two of those exit codes (3, then 1, then 0)."""
    rank = {EXIT_OK: 0, EXIT_FAILED: 1, EXIT_UNSETTLED: 2}
    return a if rank.get(a, 3) >= rank.get(b, 3) else b


def report_journal(
    journal: JournalBackend,
    path: str,
    *,
    out: str | None = None,
    stream: TextIO | None = None,
    resume: str | None = None,
) -> int:
    """Print the journal's totals (the whole file, whatever run settled each item), list the
    payouts not confirmed paid (at most :data:`LIST_LIMIT`) and say what to run next
    (``resume``: the exact command that resumes this run, options included).
    Returns the exit code those totals call for."""
    stream = stream or sys.stdout
    totals = journal.totals()
    counts = {state: count for state, (count, _) in totals.items()}
    items = sum(counts.values())
    parts = [
        f"{state} {totals[state][0]} (IDR {totals[state][1]:,})"
        for state in (*_ORDER, *sorted(set(totals) - set(_ORDER)))
        if state in totals
    ]
    print(f"journal {path}: {items} items - " + ", ".join(parts or ["empty"]), file=stream)
    _list_not_paid(journal, path, out, counts, stream)
    short = _insufficient_funds(journal) if counts.get("retry") else 0
    for line in _next_steps(path, counts, resume, short=short):
        print(line, file=stream)
    return exit_code_of(counts)


def _list_not_paid(
    journal: JournalBackend, path: str, out: str | None, counts: dict[str, int], stream: TextIO
) -> None:
    listed_states = (*_OPEN, "failed", "refunded", "retry")
    total = sum(counts.get(state, 0) for state in listed_states)
    if not total:
        return
    print(f"not confirmed paid ({total}):", file=stream)
    for shown, entry in enumerate(journal.entries(states=listed_states)):
        if shown == LIST_LIMIT:
            break
        detail = " ".join(filter(None, (entry.code, entry.message))) or "-"
        print(f"  {entry.item.reference}  {entry.state}  {detail}", file=stream)
    if total > LIST_LIMIT:
        where = out or f"'doku-async journal export {shlex.quote(path)}'"
        print(f"  and {total - LIST_LIMIT} more, see {where}", file=stream)


def _insufficient_funds(journal: JournalBackend) -> int:
    """How many ``retry`` items DOKU refused for insufficient funds (``403xx14``)."""
    return sum(
        1 for entry in journal.entries(states=("retry",)) if _INSUFFICIENT.fullmatch(entry.code)
    )


def _next_steps(
    path: str, counts: dict[str, int], resume: str | None, *, short: int = 0
) -> list[str]:
    journal = shlex.quote(path)
    resume = resume or f"doku-async payouts resume {journal}"
    follow = sum(counts.get(state, 0) for state in _OPEN)
    to_pay = counts.get("retry", 0) + counts.get("planned", 0)
    gone = counts.get("failed", 0) + counts.get("refunded", 0)
    lines: list[str] = []
    if follow:
        which = ", ".join(f"{counts[s]} {s}" for s in _OPEN if counts.get(s))
        lines.append(
            f"next: run 'doku-async payouts reconcile {journal}' to follow {follow} payout(s) "
            f"DOKU has not settled ({which}); never pay them again by hand"
        )
    if short:
        lines.append(
            f"{short} payout(s) were refused for insufficient funds (DOKU 403xx14; nothing "
            "paid): top up the DOKU balance, then run the resume below"
        )
    if to_pay:
        lines.append(
            f"next: run '{resume}' to pay {to_pay} payout(s) not "
            "paid yet (nothing was paid for them)"
        )
    if gone:
        lines.append(
            f"{gone} payout(s) failed or were refunded (nothing paid, or the money came back): "
            "correct them and pay them under new references"
        )
    if not lines:
        lines.append("every payout is confirmed paid by DOKU")
    return lines


def print_entry(
    reference: str, where: str, entry: JournalEntry | None, events: list[JournalEvent]
) -> None:
    """The journal's part of ``payouts status``: one payout's state and its events."""
    if entry is None:
        print(f"journal: {reference} is not in {where}")
        return
    print(
        f"journal: {entry.state} code={entry.code or '-'} external_id="
        f"{entry.external_id or '-'} reference_no={entry.reference_no or '-'}"
    )
    if entry.message:
        print(f"journal message: {entry.message}")
    print_events(events)


def print_events(events: list[JournalEvent], stream: TextIO | None = None) -> None:
    """The journal's events of one payout, oldest first: time, source, state, code, message."""
    stream = stream or sys.stdout
    if not events:
        print(
            "events: none recorded (never sent, or journaled before events were kept)", file=stream
        )
        return
    print("events (oldest first):", file=stream)
    for event in events:
        at = datetime.fromtimestamp(event.at).astimezone().isoformat(timespec="seconds")
        print(
            f"  {at}  {event.source:<12} {event.state:<9} {event.code or '-':<7} "
            f"{event.message or '-'}",
            file=stream,
        )
