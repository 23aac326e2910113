"""A journal's plan: the input file it was made from, and the checks that keep a resume from
skipping payees or paying another file's."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from .._exceptions import DokuError
from ._models import PayoutItem

__all__ = ["IncompletePlanError", "PlanMismatchError", "PlanRecord", "PlanSource"]


@dataclass(frozen=True)
class PlanSource:
    """The input a plan was made from: its row count, the sha256 of its bytes, a name."""

    rows: int
    sha256: str
    name: str = ""


@dataclass(frozen=True)
class PlanRecord:
    """A complete plan, as recorded in the journal (in the plan's own transaction)."""

    rows: int
    sha256: str
    name: str
    planned_at: float


class PlanMismatchError(DokuError):
    """The journal was planned from another input file; nothing was written or sent."""


class IncompletePlanError(DokuError):
    """The journal holds no complete plan (planning was interrupted, or the journal file lost
    its latest transactions); a resume would skip payees, so it is refused. Nothing was sent.
    Attributes: ``planned`` rows present, ``expected`` rows (``None`` when unknown)."""

    def __init__(self, message: str, *, planned: int, expected: int | None) -> None:
        super().__init__(message)
        self.planned = planned
        self.expected = expected


def plan_record_of(meta: dict[str, str]) -> PlanRecord | None:
    """The complete plan recorded in a journal's ``meta``, or ``None``."""
    try:
        return PlanRecord(
            rows=int(meta["plan_rows"]),
            sha256=meta["plan_sha256"],
            name=meta.get("plan_name", ""),
            planned_at=float(meta.get("planned_at", "0")),
        )
    except (KeyError, ValueError):
        return None


def check_same_source(
    db: sqlite3.Connection,
    path: str,
    recorded: PlanRecord | None,
    source: PlanSource,
    items: Iterable[PayoutItem],
) -> None:
    """Raise :class:`PlanMismatchError` unless ``source`` may (complete the) plan of the
    journal at ``path``."""
    if recorded is not None:
        if recorded.sha256 != source.sha256 or recorded.rows != source.rows:
            raise PlanMismatchError(
                f"the journal {path} was planned from another file "
                f"({recorded.name or 'unnamed'}: {recorded.rows} rows, sha256 "
                f"{recorded.sha256[:12]}...); this file ({source.name or 'unnamed'}) has "
                f"{source.rows} rows, sha256 {source.sha256[:12]}...: nothing was sent. "
                "Use a new journal for a new file."
            )
        return
    # No record: an interrupted plan of an older version, or a journal written by the
    # library. The file may complete it only if it holds every journaled reference.
    given = {item.reference for item in items}
    extra = 0
    example = ""
    for (reference,) in db.execute("SELECT reference FROM items"):
        if reference not in given:
            extra += 1
            example = example or str(reference)
    if extra:
        raise PlanMismatchError(
            f"the journal {path} holds {extra} reference(s) this file lacks (e.g. "
            f"{example}): it belongs to another file; nothing was sent. Use a new journal "
            "for a new file."
        )


def check_complete(path: str, count: int, record: PlanRecord | None) -> PlanRecord:
    """``record``, if the journal at ``path`` (holding ``count`` items) has its whole plan;
    raises :class:`IncompletePlanError` otherwise."""
    if record is None:
        raise IncompletePlanError(
            f"the journal {path} holds {count} item(s) but no record of a complete "
            "plan (planning was interrupted, or the journal lost its latest "
            "transactions): resuming could skip payees, so nothing was sent. Run "
            "'doku-async payouts run FILE --journal JOURNAL' again with the same payout "
            "file to complete the plan and continue.",
            planned=count,
            expected=None,
        )
    if count < record.rows:
        raise IncompletePlanError(
            f"the journal {path} holds {count} of the {record.rows} planned rows "
            f"({record.name or 'the payout file'}): it lost transactions, so resuming "
            "could skip payees; nothing was sent. Restore a backup ('doku-async journal "
            "backup'), or run 'doku-async payouts run FILE --journal JOURNAL' again with "
            "the same payout file to complete the plan.",
            planned=count,
            expected=record.rows,
        )
    return record
