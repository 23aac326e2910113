"""``--max-amount`` and ``--max-total``: caps that refuse a run before anything is sent."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from decimal import Decimal

from ..bulk import PayoutItem

__all__ = ["CAP_LIST_LIMIT", "add_cap_options", "cap_problems", "parse_cap"]

CAP_LIST_LIMIT = 20
"""How many rows over ``--max-amount`` are named on screen."""

_AMOUNT = re.compile(r"[0-9]{1,14}(\.[0-9]{1,2})?")


def parse_cap(text: str) -> Decimal:
    """An IDR amount as DOKU writes it (``1000000`` or ``1000000.00``): digits, at most two
    decimals, above zero. Anything else (a sign, a thousands separator, an exponent, ``nan``)
    is refused, so a typo can never loosen a cap.

    Raises:
        argparse.ArgumentTypeError: the text is not such an amount.
    """
    value = text.strip()
    if not _AMOUNT.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IDR amount: write digits with at most two decimals, no sign, "
            "no thousands separator (e.g. 5000000 or 5000000.00)"
        )
    amount = Decimal(value).quantize(Decimal("0.01"))
    if amount <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a cap must be above zero")
    return amount


def cap_problems(
    items: Sequence[PayoutItem], *, max_amount: Decimal | None, max_total: Decimal | None
) -> list[str]:
    """What the caps refuse in ``items`` (empty when within them): each row over
    ``max_amount`` (line, reference, amount; the first :data:`CAP_LIST_LIMIT`), and the total
    over ``max_total``."""
    problems: list[str] = []
    if max_amount is not None:
        over = [item for item in items if item.amount > max_amount]
        if over:
            problems.append(f"refused: {len(over)} row(s) over --max-amount IDR {max_amount:,}:")
            problems.extend(
                f"  line {item.line}: {item.reference} IDR {item.amount:,}"
                for item in over[:CAP_LIST_LIMIT]
            )
            if len(over) > CAP_LIST_LIMIT:
                problems.append(f"  and {len(over) - CAP_LIST_LIMIT} more")
    if max_total is not None:
        total = sum((item.amount for item in items), Decimal("0.00"))
        if total > max_total:
            problems.append(
                f"refused: the file's total IDR {total:,} ({len(items)} rows) is over "
                f"--max-total IDR {max_total:,}"
            )
    return problems


def add_cap_options(p: argparse.ArgumentParser) -> None:
    """``--max-amount`` and ``--max-total`` on a command's parser."""
    p.add_argument(
        "--max-amount",
        type=parse_cap,
        metavar="IDR",
        help="refuse the run if any row pays more than this (e.g. 5000000.00)",
    )
    p.add_argument(
        "--max-total",
        type=parse_cap,
        metavar="IDR",
        help="refuse the run if the file's total is more than this",
    )
