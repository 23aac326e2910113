"""Everything a payout run is checked against before anything is sent, and before its journal
is created: the file (every row), the caps, the settings, the credentials (DOKU issues a
token) and the balance. ``payouts validate`` and ``payouts run --dry-run`` print the checks;
``payouts run`` and ``resume`` refuse on the first report with problems.

No transfer and no account inquiry is ever sent from here: the only requests are the B2B token
and, with the agent key, one balance inquiry (signed with the client secret, so a wrong secret
is found here, before the journal is created).
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from .. import _validation as v
from .._client import DokuClient
from .._exceptions import (
    AuthenticationError,
    ConfigurationError,
    DokuAPIError,
    DokuConnectionError,
    DokuError,
    RequestValidationError,
    TokenError,
)
from ..bulk import (
    FINAL_STATES,
    CsvInputError,
    IncompletePlanError,
    Journal,
    PayoutItem,
    PlanSource,
    read_payout_file,
)
from ._caps import cap_problems
from ._common import EXIT_CONFIG, EXIT_INVALID_INPUT, Refused, before_sending

__all__ = ["Preflight", "check_doku", "check_local"]


@dataclass
class Preflight:
    """What the checks found: the items to pay and the problems, if any."""

    items: list[PayoutItem] = field(default_factory=list)
    total: Decimal = Decimal("0.00")
    """The file's (or, on resume, the journal's) total."""
    to_pay: Decimal = Decimal("0.00")
    """What is still to pay: the items not settled in an existing journal."""
    to_send: int = 0
    """How many payouts are still to send: the items not settled in an existing journal."""
    source: PlanSource | None = None
    customer: str | None = None
    agent_key: str | None = None
    journal_exists: bool = False
    client: DokuClient | None = None
    passed: list[str] = field(default_factory=list)
    """One line per check passed."""
    input_problems: list[str] = field(default_factory=list)
    """The file, a cap, the journal's plan or the balance refuse the run (exit 4)."""
    config_problems: list[str] = field(default_factory=list)
    """Configuration or credentials (exit 5)."""

    @property
    def problems(self) -> list[str]:
        """Every problem found, the input's first."""
        return [*self.input_problems, *self.config_problems]

    @property
    def exit_code(self) -> int:
        """4 when the input is at fault, 5 when only the configuration is, else 0."""
        if self.input_problems:
            return EXIT_INVALID_INPUT
        return EXIT_CONFIG if self.config_problems else 0

    def refusal(self, *, planned: bool = False) -> Refused:
        """The run refused for these problems (nothing sent, no journal created; or, with
        ``planned``, an existing journal's plan completed and nothing of it sent)."""
        journal = (
            "The journal keeps its plan; nothing in it was sent."
            if planned
            else "The journal was not changed."
            if self.journal_exists
            else "No journal was created."
        )
        return Refused([*self.problems, f"Nothing was sent. {journal}"], self.exit_code)


def check_local(args: argparse.Namespace) -> Preflight:
    """The checks that need no network: the file, the journal (read only), the caps, the
    settings and the ``DOKU_*`` configuration. Nothing is created or sent."""
    pf = Preflight()
    if args.action in ("run", "validate"):
        _check_file(args.csv, pf)
    journal = getattr(args, "journal", None)
    if journal is not None:
        _check_journal(args, journal, pf)
    if pf.items:
        _check_caps(args, pf)
    _check_settings(args, pf)
    try:
        pf.client = DokuClient.from_env()
        pf.passed.append(f"configuration: DOKU_* variables read; DOKU at {pf.client.base_url}")
    except ConfigurationError as exc:
        pf.config_problems.append(f"configuration error: {exc}")
    return pf


async def check_doku(pf: Preflight, *, balance: bool) -> None:
    """Ask DOKU for a token (the client id and the private key) and, when the agent key is
    known, the balance: a call signed with the client secret, so a wrong secret is found
    before any journal is created (compared with what is still to pay when ``balance``). Only
    when :func:`check_local` found the client's configuration.

    Without ``balance`` the inquiry only checks the secret: DOKU refusing its signature is a
    problem, the inquiry failing otherwise (DOKU down, an error answer) is noted and ignored."""
    doku = pf.client
    if doku is None:
        return
    what, token = "the token request", False
    try:
        await doku.authenticate()  # the B2B token alone: the client id and the key
        token = True
        pf.passed.append("credentials: DOKU issued a token")
        if pf.agent_key:
            what = "the balance inquiry"
            answer = await doku.kirim.balance_inquiry(account_no=pf.agent_key)
            pf.passed.append("client secret: DOKU accepted a signed balance inquiry")
            if balance:
                _check_balance(answer.available_balance, pf)
    except (AuthenticationError, ConfigurationError) as exc:
        pf.config_problems.extend(credential_problem(exc, token_issued=token))
    except DokuError as exc:
        if token and not balance:  # the secret could not be checked: not a refusal
            pf.passed.append(f"client secret: not checked ({what} failed: {_answer(exc)})")
        elif isinstance(exc, DokuConnectionError):
            pf.config_problems.append(f"configuration error: cannot reach DOKU: {exc}")
        else:
            pf.config_problems.append(f"configuration error: {what} failed: {_answer(exc)}")


SECRET_ADVICE = (
    "check DOKU_CLIENT_SECRET: the HMAC key that signs every Kirim call. A signature 401 "
    "after DOKU issued a token means the secret is wrong, not the private key (the token "
    "proves the client id and the private key)."
)


def credential_problem(exc: DokuError, *, token_issued: bool | None) -> list[str]:
    """The lines of a credentials failure: DOKU's code and message (never the request's
    random references, which are no payout's), and what to check (``token_issued``: whether
    DOKU had issued a token before, ``None`` when not known)."""
    lines = [f"configuration error: {_answer(exc)}"]
    key = (
        "check DOKU_CLIENT_ID and the private key (DOKU_PRIVATE_KEY or DOKU_PRIVATE_KEY_PATH): "
        "DOKU refused the token request they sign"
    )
    if isinstance(exc, AuthenticationError) and not isinstance(exc, TokenError):
        if token_issued is None:
            lines.append(f"{key}; or {SECRET_ADVICE}")
        else:
            lines.append(SECRET_ADVICE if token_issued else key)
    return lines


def _answer(exc: DokuError) -> str:
    if isinstance(exc, DokuAPIError) and exc.response_code:
        return f"DOKU answered {exc.response_code}: {exc.response_message or '-'}"
    return exc.message


_UNKNOWN_BANK = re.compile(r"unknown bank code ('\d+'); if DOKU accepts it, add it with .*")


def cli_advice(line: str) -> str:
    """A CSV error line with advice a command-line user can follow (the SDK's message names
    Python code for an unknown bank code)."""
    return _UNKNOWN_BANK.sub(
        r"unknown bank code \1: check it (Bank Indonesia's three-digit code, e.g. 014 for "
        "BCA); the command line knows the SDK's table (doku_async/_banks.py), and a code DOKU "
        "accepts that is missing there can only be paid from Python (BankCodes.with_extra)",
        line,
    )


def _check_file(path: str, pf: Preflight) -> None:
    try:
        payouts = read_payout_file(path)  # the whole file, every row
    except CsvInputError as exc:
        pf.input_problems.extend(cli_advice(line) for line in exc.message.splitlines())
        return
    pf.items, pf.total = payouts.items, payouts.total
    pf.to_pay = payouts.total
    pf.to_send = payouts.rows
    pf.source = PlanSource(payouts.rows, payouts.sha256, payouts.name)
    pf.passed.append(
        f"file: {payouts.rows} payout(s), IDR {payouts.total:,} in total; every row valid, "
        "bank codes known"
    )


def _check_journal(args: argparse.Namespace, path: str, pf: Preflight) -> None:
    """An existing journal, read without its lock (a run may hold it): its plan, what is left
    to pay and the customer number it remembers."""
    if not Path(path).is_file():
        if args.action == "resume":
            pf.config_problems.append(f"configuration error: no journal at {path}")
        else:
            pf.passed.append(f"journal: {path} does not exist yet (the run creates it)")
        return
    pf.journal_exists = True
    try:
        journal = Journal(path, lock=False)
        try:
            _read_journal(args, path, journal, pf)
        finally:
            journal.close()
    except IncompletePlanError as exc:
        pf.input_problems.append(f"refused: {exc.message}")
    except sqlite3.Error as exc:
        raise before_sending(path, exc) from None


def _read_journal(args: argparse.Namespace, path: str, journal: Journal, pf: Preflight) -> None:
    meta = journal.meta()
    pf.customer = meta.get("customer_number")
    if args.action == "resume":
        journal.check_plan_complete()
        pf.items = [entry.item for entry in journal.entries()]
        pf.total = sum((item.amount for item in pf.items), Decimal("0.00"))
    record = journal.plan_record()
    source = pf.source
    if (
        source is not None
        and record is not None
        and (record.sha256, record.rows)
        != (
            source.sha256,
            source.rows,
        )
    ):
        pf.input_problems.append(
            f"refused: the journal {path} was planned from another file ({record.name or '?'}: "
            f"{record.rows} rows); use a new journal for a new file"
        )
        return
    settled = {e.item.reference for e in journal.entries() if e.state in FINAL_STATES}
    left = [item for item in pf.items if item.reference not in settled]
    pf.to_pay = sum((item.amount for item in left), Decimal("0.00"))
    pf.to_send = len(left)
    pf.passed.append(
        f"journal: {path} exists; {len(pf.items) - len(left)} item(s) settled, {len(left)} "
        f"left (IDR {pf.to_pay:,})"
    )


def _check_caps(args: argparse.Namespace, pf: Preflight) -> None:
    max_amount, max_total = args.max_amount, args.max_total
    problems = cap_problems(pf.items, max_amount=max_amount, max_total=max_total)
    pf.input_problems.extend(problems)
    if not problems and (max_amount is not None or max_total is not None):
        caps = [
            *([f"every amount <= IDR {max_amount:,}"] if max_amount is not None else []),
            *([f"total <= IDR {max_total:,}"] if max_total is not None else []),
        ]
        pf.passed.append("caps: " + ", ".join(caps))


def _check_settings(args: argparse.Namespace, pf: Preflight) -> None:
    customer = args.customer_number or os.environ.get("DOKU_CUSTOMER_NUMBER") or pf.customer or ""
    if not customer:
        pf.config_problems.append(
            "configuration error: set --customer-number or DOKU_CUSTOMER_NUMBER (the "
            "sender's phone)"
        )
    else:
        try:
            pf.customer = v.phone("customer_number", customer)
        except RequestValidationError as exc:
            pf.config_problems.append(f"configuration error: customer number: {exc.problem}")
    concurrency = getattr(args, "concurrency", 1)
    if concurrency < 1:
        pf.config_problems.append("configuration error: --concurrency must be at least 1")
    rate = getattr(args, "rate", None)
    if rate is not None and rate <= 0:
        pf.config_problems.append("configuration error: --rate must be above zero")
    pf.agent_key = args.agent_key or os.environ.get("DOKU_AGENT_KEY") or None
    if getattr(args, "check_balance", False) and not pf.agent_key:
        pf.config_problems.append(
            "configuration error: --check-balance needs the agent key (--agent-key or "
            "DOKU_AGENT_KEY)"
        )


def _check_balance(available: Decimal | None, pf: Preflight) -> None:
    if available is None:
        pf.config_problems.append(
            "configuration error: DOKU's balance answer carried no available balance"
        )
    elif available < pf.to_pay:
        pf.input_problems.append(
            f"refused: the balance IDR {available:,} does not cover the IDR {pf.to_pay:,} "
            "still to pay"
        )
    else:
        pf.passed.append(f"balance: IDR {available:,} available covers IDR {pf.to_pay:,}")
