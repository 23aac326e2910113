"""Reading payout CSVs (validated whole before anything is sent) and writing results."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from .._exceptions import DokuError, RequestValidationError
from ._models import ItemResult, PayoutItem, payout_item

__all__ = [
    "REQUIRED_COLUMNS",
    "RESULT_COLUMNS",
    "CsvInputError",
    "PayoutFile",
    "ResultWriter",
    "parse_payouts",
    "read_payout_file",
    "read_payouts",
]

REQUIRED_COLUMNS = ("reference", "bank_code", "account_number", "account_name", "amount")
OPTIONAL_COLUMNS = ("remark",)
RESULT_COLUMNS = (
    "line",
    "reference",
    "status",
    "amount",
    "bank_code",
    "bank_name",
    "code",
    "message",
    "reference_no",
    "external_id",
    "latency_ms",
)


class CsvInputError(DokuError):
    """The CSV has errors; ``errors`` lists them as ``"line N: field: problem"``."""

    def __init__(self, errors: list[str]) -> None:
        shown = "\n".join(errors[:50])
        more = f"\n... and {len(errors) - 50} more" if len(errors) > 50 else ""
        super().__init__(f"{len(errors)} error(s) in the payout file:\n{shown}{more}")
        self.errors = errors


def read_payouts(path: str | Path) -> tuple[list[PayoutItem], Decimal]:
    """Read and validate a whole payout CSV; return its items and total.

    Raises:
        CsvInputError: with every problem and its line number; nothing is half-read.
    """
    payouts = read_payout_file(path)
    return payouts.items, payouts.total


@dataclass(frozen=True)
class PayoutFile:
    """A validated payout file: its items, their total, and the file's identity (the sha256
    of its bytes, as read) for the journal's plan record."""

    items: list[PayoutItem]
    total: Decimal
    sha256: str
    name: str

    @property
    def rows(self) -> int:
        """Number of payouts in the file."""
        return len(self.items)


def read_payout_file(path: str | Path) -> PayoutFile:
    """:func:`read_payouts`, plus the sha256 of the very bytes that were parsed.

    Raises:
        CsvInputError: with every problem and its line number; nothing is half-read.
    """
    try:
        data = Path(path).read_bytes()
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CsvInputError([f"cannot read {path}: {exc}"]) from None
    items, total = parse_payouts(io.StringIO(text))
    return PayoutFile(items, total, hashlib.sha256(data).hexdigest(), Path(path).name)


def parse_payouts(stream: TextIO) -> tuple[list[PayoutItem], Decimal]:
    """Validate CSV text; see :func:`read_payouts`."""
    reader = csv.DictReader(stream)
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CsvInputError([f"line 1: missing column(s): {', '.join(missing)}"])
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise CsvInputError([f"line 1: unknown column(s): {', '.join(unknown)}"])
    reader.fieldnames = header
    items: list[PayoutItem] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    total = Decimal("0.00")
    for row in reader:
        line = reader.line_num
        if None in row:
            errors.append(f"line {line}: too many fields")
            continue
        short = _missing_columns(row, header, line)
        if short:
            errors.append(short)
            continue
        values = {k: (v or "").strip() for k, v in row.items()}
        problems = _value_problems(row, values, header, line)
        reference = values["reference"]
        first = seen.get(reference)
        if first is not None:
            problems.append(f"line {line}: reference: duplicates line {first}")
        elif reference:
            seen[reference] = line
        if problems:
            errors.extend(problems)
            continue
        item = _item(values, line)
        items.append(item)
        total += item.amount
    if not items and not errors:
        errors.append("the file has no payouts")
    if errors:
        raise CsvInputError(errors)
    return items, total


_EXPONENT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")
"""A number in exponent notation (``1.5E+06``): a spreadsheet's reformatting."""
_THOUSANDS = re.compile(r"\d{1,3}([.,]\d{3})+([.,]\d{1,2})?")
"""Digits grouped by thousands (``200,000``, ``1.500.000``, ``200.000``, ``1,500,000.00``)."""


def _value_problems(
    row: dict[str, str | None], values: dict[str, str], header: list[str], line: int
) -> list[str]:
    """The row's value problems: one error for a row short of a value (the others moved one
    column left), else one per field, with hints for spreadsheet-formatted amounts."""
    found = _field_errors(values)
    if found and any(v is None for v in row.values()):
        fields = sum(v is not None for v in row.values())
        first = found[0]
        return [
            f"line {line}: the row has {fields} field(s), the header {len(header)}: a value "
            f"may be missing (the ones after it moved one column left; {first.field}: "
            f"{first.problem})"
        ]
    amount = values["amount"]
    amount_ok = not any(exc.field == "amount" for exc in found)
    # "200.000" is Indonesian for 200000 but reads as IDR 200.00: refused with the hint. A
    # refused "10.123" keeps its own error ("at most 2 decimal places").
    grouped = _THOUSANDS.fullmatch(amount) is not None and (
        "," in amount
        or amount.count(".") > 1
        or (amount_ok and len(amount.rpartition(".")[2]) == 3)
    )
    problems = [
        f"line {line}: {exc.field}: {exc.problem}"
        for exc in found
        if not (grouped and exc.field == "amount" and exc.problem == "is not a number")
    ]
    if grouped:
        problems.append(
            f"line {line}: amount: {amount!r} has thousands separators: write plain digits "
            "with an optional .00 (e.g. 200000 or 200000.00)"
        )
    elif _EXPONENT.fullmatch(amount):
        problems.append(
            f"line {line}: amount: write plain digits, not exponent notation "
            "(a spreadsheet may have reformatted it)"
        )
    return problems


def _missing_columns(row: dict[str, str | None], header: list[str], line: int) -> str:
    """The error of a row too short to hold a required column (``""`` if it holds them all).

    ``csv.DictReader`` fills a short row's last columns with ``None``: without this check a
    row lacking its amount would be blamed for an invalid amount. A missing optional column
    (``remark``, when last) is fine."""
    absent = [column for column in header if row.get(column) is None]
    required = [column for column in absent if column in REQUIRED_COLUMNS]
    if not required:
        return ""
    fields = len(header) - len(absent)
    return (
        f"line {line}: missing column(s) {', '.join(required)}: the row has {fields} "
        f"field(s), the header {len(header)} ({', '.join(header)})"
    )


def _item(values: dict[str, str], line: int) -> PayoutItem:
    return payout_item(
        reference=values["reference"],
        bank_code=values["bank_code"],
        account_number=values["account_number"],
        account_name=values["account_name"],
        amount=values["amount"],
        remark=values.get("remark") or None,
        line=line,
    )


def _field_errors(values: dict[str, str]) -> list[RequestValidationError]:
    """Every field's problem, not just the first (each field is checked on its own)."""
    try:
        _item(values, 0)
    except RequestValidationError:
        pass
    else:
        return []
    probe = {
        "reference": "R",
        "bank_code": "014",
        "account_number": "1",
        "account_name": "N",
        "amount": "1",
        "remark": "",
    }
    found: list[RequestValidationError] = []
    for field in probe:
        try:
            _item({**probe, field: values.get(field, "")}, 0)
        except RequestValidationError as exc:
            found.append(exc)
    return found


class ResultWriter:
    """Streams results to a CSV file, one row per item, flushed as it goes."""

    def __init__(self, path: str | Path) -> None:
        self._file = Path(path).open("w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._file)
        self._writer.writerow(RESULT_COLUMNS)

    def write(self, result: ItemResult) -> None:
        """Append one result."""
        self._writer.writerow(
            (
                "" if result.line is None else result.line,
                result.reference,
                _status_text(result),
                f"{result.amount}",
                result.bank_code,
                result.bank_name,
                result.code,
                result.message,
                result.reference_no or "",
                result.external_id or "",
                f"{result.latency * 1000:.1f}",
            )
        )

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()


def _status_text(result: ItemResult) -> str:
    if result.previous is not None:
        return f"skipped ({result.previous})"
    if result.already_paid:
        return "succeeded (already paid before this run)"
    return result.status
