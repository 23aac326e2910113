"""Ctrl-C and the summaries (issue 15): after a SIGINT the CLI prints what this run did and the
exact command that resumes it (same journal and options, secrets left out), exits 130, and the
printed command, pasted into a shell, finishes the file; summaries count the whole journal,
and failed payouts are listed with their reason (20 at most, then where to find the rest)."""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from cli_process import TIMEOUT, Cli, cli, finish, read_results, sim_env, start, transfer_refs
from helpers import wait_until

from doku_async.cli._resume import program
from doku_async.testing import DokuSimulator, SimulatorCredentials

HEADER = "reference,bank_code,account_number,account_name,amount,remark\n"


def write_rows(path: Path, count: int, prefix: str) -> tuple[Path, list[str]]:
    refs = [f"{prefix}-{i:03d}" for i in range(count)]
    path.write_text(
        HEADER
        + "".join(
            f"{ref},014,{5_000_000_000 + i * 7919},Driver {i},150000.00,\n"
            for i, ref in enumerate(refs)
        ),
        encoding="utf-8",
    )
    return path, refs


async def shell(command: str, env: dict[str, str], cwd: Path) -> Cli:
    """``command`` run by ``sh``, as a user pastes it."""
    proc = await asyncio.create_subprocess_shell(
        command,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return await finish(proc, TIMEOUT)


async def test_ctrl_c_prints_what_was_done_and_the_exact_resume_command(
    sim: DokuSimulator, creds: SimulatorCredentials, tmp_path: Path
) -> None:
    csv_path, refs = write_rows(tmp_path / "p.csv", 40, "INT")
    db, out = tmp_path / "run.db", tmp_path / "out.csv"
    env = sim_env(sim, tmp_path)  # the agent key only on the command line
    sim.inject("transfer_bank", "latency", delay=0.1, times=1000)
    proc = await start(
        "payouts", "run", str(csv_path), "--journal", str(db), "--out", str(out),
        "--concurrency", "2", "--max-amount", "200000", "--check-balance",
        "--agent-key", creds.agent_key, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        await wait_until(lambda: len(sim.requests_for("transfer_bank")) >= 3)
        proc.send_signal(signal.SIGINT)
        result = await finish(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    await sim.drain()
    sim.faults.clear()

    assert result.returncode == 130, result
    paid = len(set(transfer_refs(sim)))
    assert 1 <= paid < 40
    expected = (
        f"{shlex.quote(sys.executable)} -m doku_async payouts resume {db} --out {out} "
        '--concurrency 2 --max-amount 200000.00 --check-balance --agent-key "$DOKU_AGENT_KEY"'
    )
    lines = result.stdout.splitlines()
    assert lines[-2:] == ["resume with:", f"  {expected}"], result.stdout
    assert (
        f"interrupted (Ctrl-C): this run handled {paid} of 40 item(s) before it stopped "
        f"(succeeded {paid}); the journal is consistent and nothing will be paid twice."
    ) in lines
    # The whole journal: what was paid and what is still planned, and the same command.
    assert (
        f"journal {db}: 40 items - succeeded {paid} (IDR {Decimal(150000 * paid):,}.00), "
        f"planned {40 - paid} (IDR {Decimal(150000 * (40 - paid)):,}.00)"
    ) in lines
    assert f"next: run '{expected}' to pay {40 - paid} payout(s) not paid yet" in result.stdout
    for secret in (creds.agent_key, creds.client_secret):
        assert secret not in result.stdout + result.stderr

    # Pasted into a shell (the agent key now in the environment), it finishes the file.
    resumed = await shell(
        expected, sim_env(sim, tmp_path, DOKU_AGENT_KEY=creds.agent_key), tmp_path
    )
    assert resumed.returncode == 0, resumed
    assert f"skipped {paid}" in resumed.stdout  # this run
    assert f"journal {db}: 40 items - succeeded 40 (IDR 6,000,000.00)" in resumed.stdout
    assert "every payout is confirmed paid by DOKU" in resumed.stdout
    assert sorted(row["reference"] for row in read_results(out)) == refs
    assert {ref: sim.transfer_count(ref) for ref in refs} == dict.fromkeys(refs, 1)


async def test_failed_payouts_are_listed_with_their_reason_and_the_totals_cover_the_file(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    csv_path, _ = write_rows(tmp_path / "p.csv", 30, "NAME")
    # The bank registered other names for 25 of the accounts: those fail the name check and
    # nothing is sent for them.
    accounts = {f"{5_000_000_000 + i * 7919}": f"SOMEONE ELSE {i}" for i in range(5, 30)}
    async with DokuSimulator(credentials=creds, registered_names=accounts) as sim:
        db, out = tmp_path / "run.db", tmp_path / "out.csv"
        env = sim_env(sim, tmp_path)
        first = await cli(
            "payouts", "run", str(csv_path), "--journal", str(db), "--out", str(out),
            "--concurrency", "1", env=env, cwd=tmp_path,
        )  # fmt: skip
        assert first.returncode == 1, first
        lines = first.stdout.splitlines()
        assert "not confirmed paid (25):" in lines
        listed = [line for line in lines if line.startswith("  NAME-")]
        assert len(listed) == 20
        for i, line in zip(range(5, 25), listed, strict=True):
            reference, state, code, *message = line.split()
            assert (reference, state, code) == (f"NAME-{i:03d}", "retry", "name_mismatch")
            assert f"SOMEONE ELSE {i}" in " ".join(message)  # the reason: the bank's name
        assert f"  and 5 more, see {out}" in lines
        assert len(sim.requests_for("transfer_bank")) == 5

        # A resume: nothing new is paid, and the totals still count the whole file.
        again = await cli("payouts", "resume", str(db), env=env, cwd=tmp_path)
        assert again.returncode == 1, again
        assert "this run: 30 items" in again.stdout
        assert (
            f"journal {db}: 30 items - succeeded 5 (IDR 750,000.00), retry 25 (IDR 3,750,000.00)"
        ) in again.stdout
        assert "not confirmed paid (25):" in again.stdout
        assert "and 5 more, see 'doku-async journal export" in again.stdout
        assert len(sim.requests_for("transfer_bank")) == 5
        assert creds.client_secret not in first.stdout + again.stdout


def test_the_resume_command_names_the_program_as_it_was_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = tmp_path / "bin" / "doku-async"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(script), "payouts", "run"])
    monkeypatch.setenv("PATH", str(script.parent))
    assert program() == "doku-async"  # the one on PATH: its name is enough
    monkeypatch.setenv("PATH", str(tmp_path))
    assert program() == str(script)  # another one: its path
    monkeypatch.setattr(sys, "argv", ["/x/doku_async/__main__.py"])
    assert program() == f"{shlex.quote(sys.executable)} -m doku_async"
