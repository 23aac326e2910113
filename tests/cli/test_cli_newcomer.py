"""What a newcomer found following the README (issue 15 follow-up): a closed output pipe, a
double Ctrl-C, a dry run over an existing journal, a wrong client secret, insufficient funds,
an unknown bank code and the ``.lock`` files left behind. Each test runs the real CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest
from cli_process import TIMEOUT, cli, in_flight, read_results, sim_env, transfer_refs, write_items
from helpers import wait_until

from doku_async.bulk import Journal, PayoutItem
from doku_async.testing import DokuSimulator, SimulatorCredentials

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and signals")


def items_of(count: int, prefix: str, bank_code: str = "014") -> list[PayoutItem]:
    return [
        PayoutItem(
            reference=f"{prefix}-{i:03d}",
            bank_code=bank_code,
            account_number=f"{5_000_000_000 + i * 7919}",
            account_name=f"Driver {i}",
            amount=Decimal("150000.00"),
        )
        for i in range(count)
    ]


def states(db: Path) -> Counter[str]:
    journal = Journal(db, lock=False)
    try:
        return Counter(entry.state for entry in journal.entries())
    finally:
        journal.close()


def head(fd: int, lines: int) -> list[bytes]:
    """The first ``lines`` lines read from ``fd``, as ``head`` reads them (bounded)."""
    data = b""
    for _ in range(10_000):
        if data.count(b"\n") >= lines:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n")[:lines]


def files(directory: Path, suffix: str = "") -> list[str]:
    """The names of the files in ``directory`` ending with ``suffix``."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(suffix))


async def start_with(
    *args: str, env: dict[str, str], cwd: Path, stdout: int, stderr: int
) -> asyncio.subprocess.Process:
    """``python -m doku_async ARGS`` writing to the given descriptors."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "doku_async", *args, env=env, cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr,
    )  # fmt: skip


async def wait_or_kill(proc: asyncio.subprocess.Process) -> int:
    try:
        return await asyncio.wait_for(proc.wait(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("closed", ["stdout", "stdout and stderr"])
async def test_a_run_whose_output_pipe_closes_keeps_paying_and_stops_cleanly_on_ctrl_c(
    sim: DokuSimulator, tmp_path: Path, closed: str
) -> None:
    # `payouts run ... 2>&1 | tee log`, then Ctrl-C: tee dies, then the run writes "stopping"
    # and its summary to a closed pipe. Before the fix: BrokenPipeError in _print_summary,
    # exit 1, and items left 'sending'.
    items = items_of(40, "PIPE")
    csv_path = write_items(tmp_path / "p.csv", items)
    db, out, err_file = tmp_path / "run.db", tmp_path / "out.csv", tmp_path / "err.txt"
    sim.inject("transfer_bank", "latency", delay=0.1, times=1000)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe() if closed != "stdout" else (-1, -1)
    err_fd = err_w if err_w >= 0 else os.open(err_file, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        proc = await start_with(
            "payouts", "run", str(csv_path), "--journal", str(db), "--out", str(out),
            "--concurrency", "2", env=sim_env(sim, tmp_path), cwd=tmp_path,
            stdout=out_w, stderr=err_fd,
        )  # fmt: skip
    finally:
        os.close(out_w)
        os.close(err_fd)
    try:
        await wait_until(lambda: len(sim.requests_for("transfer_bank")) >= 3)
        os.close(out_r)  # the reader goes away mid-run
        if err_r >= 0:
            os.close(err_r)
        proc.send_signal(signal.SIGINT)
        code = await wait_or_kill(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    await sim.drain()
    sim.faults.clear()

    assert code == 130  # interrupted, not "some items failed" (1)
    left = states(db)
    assert "sending" not in left, left  # every payout in flight reached its journaled outcome
    assert set(left) == {"succeeded", "planned"}, left
    written = read_results(out)  # the results file does not depend on the terminal
    assert {row["status"] for row in written} == {"succeeded"}
    assert len(written) == left["succeeded"]
    if closed == "stdout":
        text = err_file.read_text(encoding="utf-8")
        assert "stopping: finishing payouts in flight" in text
        assert "Traceback" not in text
        assert "BrokenPipe" not in text
    assert files(tmp_path, ".lock") == []

    resumed = await cli(
        "payouts", "resume", str(db), "--out", str(out), env=sim_env(sim, tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed
    assert states(db) == Counter(succeeded=40)
    assert Counter(transfer_refs(sim)) == Counter(item.reference for item in items)


async def test_journal_export_into_head_stops_quietly(sim: DokuSimulator, tmp_path: Path) -> None:
    # `journal export dec.db --format jsonl | head -2`: before, "journal error: ... the record
    # may be incomplete (a full disk, a corrupt or truncated file?)", exit 6.
    db = tmp_path / "dec.db"
    csv_path = write_items(tmp_path / "p.csv", items_of(3, "EXP"))
    env = sim_env(sim, tmp_path)
    paid = await cli("payouts", "run", str(csv_path), "--journal", str(db), env=env, cwd=tmp_path)
    assert paid.returncode == 0, paid
    with closing(Journal(db)) as journal:  # enough lines to fill any pipe buffer
        journal.plan(items_of(3000, "BIG"))
    read_end, write_end = os.pipe()
    try:
        proc = await start_with(
            "journal", "export", str(db), "--format", "jsonl", env=env, cwd=tmp_path,
            stdout=write_end, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    finally:
        os.close(write_end)
    try:
        first = head(read_end, 2)
        os.close(read_end)  # head exits after two lines
        assert proc.stderr is not None
        err = await asyncio.wait_for(proc.stderr.read(), TIMEOUT)
        code = await wait_or_kill(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert [line.startswith(b'{"line"') for line in first] == [True, True]
    assert code == 141  # 128 + SIGPIPE, as a Unix tool reports it
    assert err == b""  # no false corruption report, no "Exception ignored"


async def test_ctrl_c_twice_says_how_many_payouts_were_in_flight_and_resume_settles_them(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    # GNU `timeout -s INT` signals the whole group: two SIGINTs arrive. Before the fix the
    # message said "the journal is consistent and nothing will be paid twice" and no more.
    items = items_of(20, "TWICE")
    csv_path = write_items(tmp_path / "p.csv", items)
    db = tmp_path / "run.db"
    env = sim_env(sim, tmp_path)
    sim.inject("transfer_bank", "latency", delay=2.0, times=4)
    proc = await start_with(
        "payouts", "run", str(csv_path), "--journal", str(db), "--concurrency", "4",
        env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_until(lambda: len(in_flight(sim)) >= 4)
        proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.2)  # two signals, as timeout sends them
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stdout, stderr = out.decode(), err.decode()
    assert proc.returncode == 130, stdout + stderr
    sending = states(db)["sending"]
    assert sending >= 1  # aborted in flight: maybe paid, recorded as such
    assert (
        f"Ctrl-C twice: {sending} payout(s) were in flight and are recorded as 'sending'"
    ) in stdout
    assert "settles them through check status before anything is sent again" in stdout
    assert "the journal is consistent and nothing will be paid twice" not in stdout
    assert "aborting: payouts in flight stay 'sending'" in stderr
    command = stdout.splitlines()[-1].strip()
    assert command.endswith(f"payouts resume {db} --concurrency 4")
    await sim.drain()
    sim.faults.clear()
    resumed = await cli("payouts", "resume", str(db), "--concurrency", "4", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed
    refs = [item.reference for item in items]
    assert {ref: sim.transfer_count(ref) for ref in refs} == dict.fromkeys(refs, 1)
    assert len(sim.requests_for("check_status")) >= sending


async def test_dry_run_over_an_existing_journal_says_what_is_left(
    sim: DokuSimulator, creds: SimulatorCredentials, tmp_path: Path
) -> None:
    items = items_of(5, "DRY")
    csv_path = write_items(tmp_path / "p.csv", items)
    db = tmp_path / "run.db"
    env = sim_env(sim, tmp_path, DOKU_AGENT_KEY=creds.agent_key)
    with closing(Journal(db)) as journal:  # two settled earlier, three left
        journal.plan(items)
        for item in items[:2]:
            journal.record(item, "succeeded", code="00")
    dry = await cli(
        "payouts", "run", str(csv_path), "--journal", str(db), "--dry-run", env=env, cwd=tmp_path
    )
    assert dry.returncode == 0, dry
    assert "no journal was created" not in dry.stdout
    assert f"the existing journal {db} was read, not changed" in dry.stdout
    assert "ready: a run would send 3 payout(s) (2 settled in the journal)" in dry.stdout
    assert not sim.requests_for("transfer_bank")


@pytest.mark.parametrize("agent_key", [False, True])
async def test_a_wrong_client_secret_says_what_to_check_and_leaves_nothing_behind(
    sim: DokuSimulator, creds: SimulatorCredentials, tmp_path: Path, agent_key: bool
) -> None:
    csv_path = write_items(tmp_path / "p.csv", items_of(4, "SECRET"))
    db, out = tmp_path / "ws.db", tmp_path / "ws.csv"
    env = sim_env(sim, tmp_path, DOKU_CLIENT_SECRET="not-the-secret")
    if agent_key:  # the preflight's balance inquiry finds it before the journal is created
        env["DOKU_AGENT_KEY"] = creds.agent_key
    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(db), "--out", str(out),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 5, result
    assert "check DOKU_CLIENT_SECRET: the HMAC key that signs every Kirim call" in result.stderr
    assert "means the secret is wrong, not the private key" in result.stderr
    assert "Nothing was sent." in result.stderr
    assert "partnerReferenceNo" not in result.stdout + result.stderr  # a random one, no payout's
    assert "not-the-secret" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert files(tmp_path) == ["p.csv"]  # no journal, lock, results
    assert not sim.requests_for("transfer_bank")
    again = await cli(  # the same command, the secret fixed, pays the file
        "payouts", "run", str(csv_path), "--journal", str(db), "--out", str(out),
        env=sim_env(sim, tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again


async def test_insufficient_funds_are_retry_everywhere_with_the_top_up_advice(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    items = items_of(5, "POOR")
    csv_path = write_items(tmp_path / "p.csv", items)
    db = tmp_path / "run.db"
    async with DokuSimulator(credentials=creds, balance=Decimal("450000.00")) as sim:
        result = await cli(
            "payouts", "run", str(csv_path), "--journal", str(db), "--concurrency", "1",
            env=sim_env(sim, tmp_path), cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 1, result
    lines = result.stdout.splitlines()
    run_line = next(line for line in lines if line.startswith("this run:"))
    # The run line uses the journal line's words: 2 'retry', none 'failed' (it said failed 2).
    assert "succeeded 3 (IDR 450,000.00), failed 0, retry 2, pending 0" in run_line
    assert (
        f"journal {db}: 5 items - succeeded 3 (IDR 450,000.00), retry 2 (IDR 300,000.00)"
    ) in lines
    assert states(db) == Counter(succeeded=3, retry=2)
    codes = {line.split()[2] for line in lines if line.startswith("  POOR-")}
    assert len(codes) == 1
    assert codes.pop().startswith("403")
    assert (
        "2 payout(s) were refused for insufficient funds (DOKU 403xx14; nothing paid): top up "
        "the DOKU balance, then run the resume below"
    ) in lines
    assert any(line.startswith("next: run '") and "payouts resume" in line for line in lines)
    assert files(tmp_path, ".lock") == []  # a clean close leaves no lock file


async def test_an_unknown_bank_code_gets_advice_for_the_command_line(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    csv_path = write_items(tmp_path / "p.csv", items_of(1, "BANK", bank_code="998"))
    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(tmp_path / "b.db"),
        env=sim_env(sim, tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 4, result
    assert "unknown bank code '998': check it" in result.stderr
    assert "DokuClient(" not in result.stderr  # no Python advice on the command line
    assert "Nothing was sent." in result.stderr


async def test_a_refused_token_points_at_the_client_id_and_the_key_not_the_secret(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    csv_path = write_items(tmp_path / "p.csv", items_of(1, "TOKEN"))
    env = sim_env(sim, tmp_path, DOKU_CLIENT_ID="BRN-0001-0000000000000")
    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(tmp_path / "t.db"), env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 5, result
    assert "check DOKU_CLIENT_ID and the private key" in result.stderr
    assert "DOKU_CLIENT_SECRET" not in result.stderr
    assert files(tmp_path) == ["p.csv"]


async def test_a_failing_balance_inquiry_does_not_block_a_run_without_check_balance(
    sim: DokuSimulator, creds: SimulatorCredentials, tmp_path: Path
) -> None:
    # With the agent key known the preflight asks the balance to check the client secret;
    # DOKU failing that inquiry otherwise (HTTP 500) is no reason to refuse the run.
    csv_path = write_items(tmp_path / "p.csv", items_of(2, "BAL"))
    sim.inject("balance_inquiry", "error", status=500, response_code="5004200", times=10)
    env = sim_env(sim, tmp_path, DOKU_AGENT_KEY=creds.agent_key)
    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(tmp_path / "b.db"), env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result
    assert sim.requests_for("balance_inquiry")  # asked, and failed
    assert {r.status for r in sim.requests_for("balance_inquiry")} == {500}
    assert set(transfer_refs(sim)) == {"BAL-000", "BAL-001"}
