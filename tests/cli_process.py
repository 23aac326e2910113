"""Running the ``doku-async`` CLI as a real OS process against a simulator in the test's loop.

Shared by the journal-safety tests and the reliability matrix: every process is bounded by a
timeout and killed if it overruns (see :func:`killed_on_exit`).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doku_async.bulk import PayoutItem
from doku_async.testing import DokuSimulator

CUSTOMER = "628115678890"
TIMEOUT = 30.0
HEADER = ("reference", "bank_code", "account_number", "account_name", "amount", "remark")


@dataclass
class Cli:
    """A finished CLI process."""

    returncode: int
    stdout: str
    stderr: str


def base_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment without any ``DOKU_`` variable; temporary files (the demo's
    journal) go under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOKU_")}
    env["TMPDIR"] = str(tmp_path)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def sim_env(sim: DokuSimulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI process paying through ``sim``."""
    env = base_env(tmp_path)
    creds = sim.credentials
    env.update(
        DOKU_BASE_URL=sim.base_url,
        DOKU_CLIENT_ID=creds.client_id,
        DOKU_CLIENT_SECRET=creds.client_secret,
        DOKU_PRIVATE_KEY=creds.private_key_pem.decode(),
        DOKU_CUSTOMER_NUMBER=CUSTOMER,
    )
    env.update(extra)
    return env


async def start(*args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    """Start ``python -m doku_async ARGS``."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "doku_async",
        *args,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def start_python(code: str, *args: str, cwd: Path) -> asyncio.subprocess.Process:
    """Start ``python -c CODE ARGS`` (for a process that kills itself at a chosen point)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process, timeout: float = TIMEOUT) -> Cli:
    """Wait for ``proc`` (killed on timeout)."""
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Cli(proc.returncode, out.decode(), err.decode())


async def cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = TIMEOUT) -> Cli:
    """Run the CLI to its end while this loop keeps serving the simulator."""
    return await finish(await start(*args, env=env, cwd=cwd), timeout)


@asynccontextmanager
async def killed_on_exit(
    proc: asyncio.subprocess.Process,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Yield ``proc``; kill it on the way out if it is still running."""
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL ``proc`` and reap it."""
    proc.kill()
    await asyncio.wait_for(proc.wait(), TIMEOUT)
    await proc.communicate()


def write_items(path: Path, items: Iterable[PayoutItem]) -> Path:
    """A payout CSV holding ``items``."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for item in items:
            writer.writerow(
                (
                    item.reference,
                    item.bank_code,
                    item.account_number,
                    item.account_name,
                    f"{item.amount}",
                    item.remark or "",
                )
            )
    return path


def read_results(path: Path) -> list[dict[str, str]]:
    """The rows of a results CSV."""
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def transfer_refs(sim: DokuSimulator) -> list[str]:
    """``partnerReferenceNo`` of every transfer request the simulator received."""
    refs: list[str] = []
    for request in sim.requests_for("transfer_bank"):
        body: dict[str, Any] = json.loads(request.body)
        refs.append(body["partnerReferenceNo"])
    return refs


def in_flight(sim: DokuSimulator) -> list[str]:
    """References of transfer requests the simulator has not answered yet."""
    return [
        json.loads(r.body)["partnerReferenceNo"]
        for r in sim.requests_for("transfer_bank")
        if r.status == 0
    ]


KILL_DURING_PLAN = """
import os, signal, sys
from decimal import Decimal
from doku_async.bulk import Journal, PayoutItem, PlanSource, read_payout_file

path, journal, after, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
payouts = read_payout_file(path)

class KilledWhilePlanning(list):
    passes = 0

    def __iter__(self):  # the plan reads the items twice: checked, then inserted
        KilledWhilePlanning.passes += 1
        for i, item in enumerate(list.__iter__(self)):
            if i == after and (KilledWhilePlanning.passes == 2 or mode != "atomic"):
                os.kill(os.getpid(), signal.SIGKILL)
            yield item

items = KilledWhilePlanning(payouts.items)
j = Journal(journal)
if mode == "atomic":
    j.plan(items, source=PlanSource(payouts.rows, payouts.sha256, payouts.name))
else:  # how planning worked before: one autocommitted row at a time
    for item in items:
        j._db.execute(
            "INSERT INTO items(reference, line, bank_code, account_number, account_name, "
            "amount, remark, state, updated) VALUES(?,?,?,?,?,?,?,'planned',0)",
            (item.reference, item.line, item.bank_code, item.account_number,
             item.account_name, str(item.amount), item.remark),
        )
"""
"""``python -c`` code: plan ``argv[1]`` into the journal ``argv[2]`` and SIGKILL itself after
``argv[3]`` rows, planning ``atomic``-ally (the fix) or ``legacy`` (row by row, as before)."""
