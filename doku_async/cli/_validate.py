"""``doku-async payouts validate FILE`` and ``payouts run --dry-run``: every check a run makes
before its first transfer, reported at once, and nothing sent.

DOKU sees at most two requests: the B2B token (the credentials) and one balance inquiry (the
file's total against the available balance). No account inquiry and no transfer is sent, and
no journal is created.
"""

from __future__ import annotations

import argparse
import sys

from ._caps import add_cap_options
from ._preflight import check_doku, check_local

__all__ = ["add_validate_parser", "validate_command"]


def add_validate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``payouts validate FILE``."""
    validate = sub.add_parser(
        "validate",
        help="check a CSV, the caps, the configuration, the credentials and the balance; "
        "sends no transfer",
    )
    validate.add_argument("csv", help="the payout file to check")
    validate.add_argument("--customer-number", help="sender phone 62... (or DOKU_CUSTOMER_NUMBER)")
    validate.add_argument("--agent-key", help="agent key for the balance (or DOKU_AGENT_KEY)")
    validate.add_argument(
        "--skip-balance", action="store_true", help="do not ask DOKU for the balance"
    )
    add_cap_options(validate)


async def validate_command(args: argparse.Namespace) -> int:
    """Run every check and print each result; 0 when the run would start, 4 when the file, a
    cap, the journal's plan or the balance refuses it, 5 for the configuration only."""
    pf = check_local(args)
    skip_balance = getattr(args, "skip_balance", False)
    balance = not skip_balance and bool(pf.items)  # a total only from a valid file
    if pf.client is not None:
        async with pf.client:
            await check_doku(pf, balance=balance)
    skipped = ""
    if balance and not pf.agent_key:
        pf.config_problems.append(
            "balance: not checked: set DOKU_AGENT_KEY or --agent-key (or pass --skip-balance)"
        )
    elif not balance:
        skipped = "--skip-balance" if skip_balance else "the file has errors"
    out = sys.stdout
    journal = getattr(args, "journal", None)
    touched = (
        f"the existing journal {journal} was read, not changed"
        if pf.journal_exists
        else "no journal was created"
    )
    print(f"checked {args.csv}: no transfer was sent, {touched}", file=out)
    for line in pf.passed:
        print(f"  ok: {line}", file=out)
    if skipped:
        print(f"  balance: not checked ({skipped})", file=out)
    for line in pf.problems:
        print(f"  {line}", file=out)
    if pf.problems:
        print("not ready: fix the problems above, then validate again", file=out)
    else:
        settled = len(pf.items) - pf.to_send
        already = f" ({settled} settled in the journal)" if settled else ""
        print(f"ready: a run would send {pf.to_send} payout(s){already}", file=out)
    return pf.exit_code
