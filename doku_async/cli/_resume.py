"""After a Ctrl-C: what this run did, and the exact command that resumes it."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path
from typing import TextIO

from ..bulk import BulkSummary

__all__ = ["print_interrupted", "program", "resume_command"]

DEFAULT_CONCURRENCY = 32
DEFAULT_POLL_INTERVAL = 10.0


def program() -> str:
    """How this command line was started: ``doku-async`` (the one on ``PATH``), the script's
    path (another one), or ``PYTHON -m doku_async``."""
    started = sys.argv[0] if sys.argv else ""
    if Path(started).name not in ("doku-async", "doku-async.exe"):
        return f"{shlex.quote(sys.executable)} -m doku_async"
    on_path = shutil.which("doku-async")
    if on_path is not None and Path(on_path).resolve() == Path(started).resolve():
        return "doku-async"
    return shlex.quote(started)


def resume_command(args: argparse.Namespace) -> str:
    """``payouts resume`` with this run's journal and options, ready to paste.

    The agent key is a secret: never printed. When this run was given ``--agent-key``, the
    command reads it from ``$DOKU_AGENT_KEY`` instead (set it first)."""
    words = ["payouts", "resume", args.journal]
    if args.out:
        words += ["--out", args.out]  # a resume lists every item: the file stays complete
    if args.concurrency != DEFAULT_CONCURRENCY:
        words += ["--concurrency", str(args.concurrency)]
    if args.rate is not None:
        words += ["--rate", f"{args.rate:g}"]
    if args.customer_number:
        words += ["--customer-number", args.customer_number]
    for flag, value in (("--max-amount", args.max_amount), ("--max-total", args.max_total)):
        if value is not None:
            words += [flag, str(value)]
    if args.wait_final:
        words.append("--wait-final")
    if args.poll_interval != DEFAULT_POLL_INTERVAL:
        words += ["--poll-interval", f"{args.poll_interval:g}"]
    command = " ".join([program(), *(shlex.quote(word) for word in words)])
    if args.check_balance:
        command += " --check-balance"
        if args.agent_key:
            command += ' --agent-key "$DOKU_AGENT_KEY"'
    return command


def print_interrupted(
    summary: BulkSummary, resume: str, stream: TextIO | None = None, *, in_flight: int = 0
) -> None:
    """What this run did before Ctrl-C, and the command that resumes (exit code 130).

    ``in_flight``: payouts a second Ctrl-C aborted while they were being sent (recorded as
    ``sending``: maybe paid); the resume settles them through check status first."""
    stream = stream or sys.stdout
    c = summary.counts
    done = ", ".join(f"{state} {count}" for state, count in c.items() if count) or "nothing"
    left = f" of {summary.total}" if summary.total is not None else ""
    handled = (
        f"interrupted (Ctrl-C): this run handled {summary.done}{left} item(s) before it "
        f"stopped ({done})"
    )
    if not in_flight:
        print(f"{handled}; the journal is consistent and nothing will be paid twice.", file=stream)
    else:
        print(f"{handled}.", file=stream)
        print(
            f"Ctrl-C twice: {in_flight} payout(s) were in flight and are recorded as 'sending' "
            "(DOKU may have paid them): do not pay them by hand. The resume below settles them "
            "through check status before anything is sent again; nothing will be paid twice.",
            file=stream,
        )
    print(f"resume with:\n  {resume}", file=stream)
