"""The ``doku-async`` command line, end to end.

Each test starts a ``DokuSimulator`` in the test's event loop and runs the CLI in a
subprocess (``python -m doku_async ...``, its own event loop) with ``DOKU_*`` variables
pointing at it, then checks the exit code, the output files, the journal and the simulator's
ledger. Every subprocess is bounded by a timeout and killed if it overruns.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cli_process import base_env, cli, finish, sim_env, start
from helpers import wait_until

from doku_async.bulk import Journal
from doku_async.cli import main
from doku_async.testing import DokuSimulator, SimulatorCredentials

CUSTOMER = "628115678890"
HEADER = "reference,bank_code,account_number,account_name,amount,remark\n"
TIMEOUT = 30.0


@pytest.fixture
async def sim(creds: SimulatorCredentials) -> AsyncIterator[DokuSimulator]:
    # notification_delay=0: UNPAID magic values settle before the CLI's first check status,
    # so --wait-final never needs its 10 s poll.
    async with DokuSimulator(credentials=creds, notification_delay=0) as simulator:
        yield simulator


def write_csv(path: Path, rows: list[tuple[str, str, str, str, str]]) -> Path:
    path.write_text(HEADER + "".join(",".join(row) + ",\n" for row in rows), encoding="utf-8")
    return path


def rows(count: int, prefix: str = "CLI") -> list[tuple[str, str, str, str, str]]:
    return [
        (f"{prefix}-{i:04d}", "014", f"{5_000_000_000 + i * 7919}", f"Driver {i}", "150000.00")
        for i in range(count)
    ]


def read_results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def body_of(request: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(request.body)
    return parsed


def transfer_requests_by_ref(sim: DokuSimulator) -> Counter[str]:
    return Counter(body_of(r)["partnerReferenceNo"] for r in sim.requests_for("transfer_bank"))


def assert_never_paid_twice(sim: DokuSimulator, refs: list[str]) -> None:
    assert [r for r in refs if sim.transfer_count(r) > 1] == []


def journal_states(path: Path) -> dict[str, str]:
    journal = Journal(path)
    try:
        return {e.item.reference: e.state for e in journal.entries()}
    finally:
        journal.close()


async def start_run(
    sim: DokuSimulator, tmp_path: Path, count: int, *, prefix: str, concurrency: int
) -> tuple[list[str], Path, dict[str, str], asyncio.subprocess.Process]:
    """``payouts run`` over ``count`` rows with a journal, started in the background
    (queue any simulator fault first). Returns the references, journal, env and process."""
    table = rows(count, prefix=prefix)
    csv_path = write_csv(tmp_path / "p.csv", table)
    db = tmp_path / "run.db"
    env = sim_env(sim, tmp_path)
    proc = await start(
        "payouts", "run", str(csv_path), "--journal", str(db),
        "--concurrency", str(concurrency), env=env, cwd=tmp_path,
    )  # fmt: skip
    return [r[0] for r in table], db, env, proc


def in_flight_transfers(sim: DokuSimulator) -> list[str]:
    return [
        body_of(r)["partnerReferenceNo"] for r in sim.requests_for("transfer_bank") if r.status == 0
    ]


# ---------------------------------------------------------------------- invalid input


async def test_invalid_csv_exits_4_lists_every_error_and_sends_nothing(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        HEADER + "R-1,014,8377388292,OK,1000,\n"
        "R-2,01A,8377388292,X,1000,\n"
        "R-3,014,8377388292,,10.123,\n"
        "R-1,014,8377388292,X,1000,\n"
        "R-5,014,8377388292,X,1000,remark,extra\n",
        encoding="utf-8",
    )
    db = tmp_path / "run.db"
    result = await cli(
        "payouts", "run", str(bad), "--journal", str(db), env=sim_env(sim, tmp_path), cwd=tmp_path
    )
    assert result.returncode == 4, result
    assert "5 error(s) in the payout file" in result.stderr
    for expected in (
        "line 3: bank_code: may contain only digits 0-9",
        "line 4: account_name: must not be empty",
        "line 4: amount: must have at most 2 decimal places",
        "line 5: reference: duplicates line 2",
        "line 6: too many fields",
        "Nothing was sent.",
    ):
        assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert sim.requests == []
    assert not db.exists()  # validated before the journal is even created


async def test_unreadable_csv_exits_4(sim: DokuSimulator, tmp_path: Path) -> None:
    result = await cli(
        "payouts",
        "run",
        str(tmp_path / "nope.csv"),
        "--journal",
        str(tmp_path / "run.db"),
        env=sim_env(sim, tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 4
    assert "cannot read" in result.stderr
    assert "Traceback" not in result.stderr
    assert sim.requests == []


# ------------------------------------------------------------------------ a real run


async def test_run_resume_and_status_end_to_end(sim: DokuSimulator, tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "p.csv", rows(6))
    refs = [r[0] for r in rows(6)]
    db = tmp_path / "run.db"
    out = tmp_path / "out.csv"
    env = sim_env(sim, tmp_path)

    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(db), "--out", str(out),
        "--concurrency", "3", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result
    assert "this run: 6 items" in result.stdout
    assert "succeeded 6 (IDR 900,000.00), failed 0, pending 0, unknown 0, skipped 0" in (
        result.stdout
    )
    # Not a terminal: plain "progress:" lines on stderr, the last one complete.
    progress = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert progress, result.stderr
    assert progress[-1].startswith("progress: 6/6  ok 6  failed 0")
    assert "\r" not in result.stderr
    assert "Traceback" not in result.stderr

    table = read_results(out)
    assert len(table) == 6
    assert sorted(r["reference"] for r in table) == refs
    for row in table:
        assert row["status"] == "succeeded"
        assert row["amount"] == "150000.00"
        assert row["external_id"] == sim.transfers[row["reference"]].external_id
        assert row["reference_no"] == sim.transfers[row["reference"]].reference_no
        assert row["line"] == str(refs.index(row["reference"]) + 2)
    assert journal_states(db) == dict.fromkeys(refs, "succeeded")
    for ref in refs:
        assert sim.transfer_count(ref) == 1
    transfers_before = len(sim.requests_for("transfer_bank"))

    # Resume: everything is already paid.
    out2 = tmp_path / "out2.csv"
    env_without_customer = {k: v for k, v in env.items() if k != "DOKU_CUSTOMER_NUMBER"}
    resumed = await cli(
        "payouts", "resume", str(db), "--out", str(out2), env=env_without_customer, cwd=tmp_path
    )  # the customer number comes from the journal this time
    assert resumed.returncode == 0, resumed
    assert "skipped 6" in resumed.stdout
    assert {r["status"] for r in read_results(out2)} == {"skipped (succeeded)"}
    assert len(sim.requests_for("transfer_bank")) == transfers_before
    assert len(sim.requests_for("account_inquiry")) == 6

    # Status: what the journal recorded and what DOKU says.
    status = await cli("payouts", "status", refs[2], "--journal", str(db), env=env, cwd=tmp_path)
    assert status.returncode == 0, status
    transfer = sim.transfers[refs[2]]
    assert (
        f"journal: succeeded code=00 external_id={transfer.external_id} "
        f"reference_no={transfer.reference_no}"
    ) in status.stdout
    assert "DOKU: 00 (" in status.stdout
    assert f"reference_no={transfer.reference_no}" in status.stdout.splitlines()[-1]
    assert_never_paid_twice(sim, refs)


async def test_run_with_a_failing_row_exits_1(sim: DokuSimulator, tmp_path: Path) -> None:
    table = [*rows(3), ("CLI-FAIL", "002", "9000012345", "Unpaid Then Failed", "50000.00")]
    csv_path = write_csv(tmp_path / "p.csv", table)
    db = tmp_path / "run.db"
    out = tmp_path / "out.csv"
    env = sim_env(sim, tmp_path)
    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(db), "--out", str(out),
        "--wait-final", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result
    by_ref = {r["reference"]: r for r in read_results(out)}
    assert by_ref["CLI-FAIL"]["status"] == "failed"
    assert by_ref["CLI-FAIL"]["code"] == "06"
    assert {by_ref[r[0]]["status"] for r in rows(3)} == {"succeeded"}
    assert "failed 1" in result.stdout
    assert journal_states(db)["CLI-FAIL"] == "failed"

    # A resume leaves the failed row alone (final): nothing failed in this run, exit 0.
    resumed = await cli("payouts", "resume", str(db), env=env, cwd=tmp_path)
    assert resumed.returncode == 1, resumed  # the failed item is still unpaid
    assert "skipped 4" in resumed.stdout
    assert sim.transfer_count("CLI-FAIL") == 1

    failed = await cli("payouts", "status", "CLI-FAIL", env=env, cwd=tmp_path)
    assert failed.returncode == 1
    assert "DOKU: 06 (" in failed.stdout
    unknown = await cli(
        "payouts", "status", "NEVER-SENT", "--journal", str(db), env=env, cwd=tmp_path
    )
    assert unknown.returncode == 1  # not found at DOKU: nothing was paid
    assert f"journal: NEVER-SENT is not in {db}" in unknown.stdout
    assert "DOKU: 07 (" in unknown.stdout
    assert_never_paid_twice(sim, [r[0] for r in table])


async def test_status_does_not_create_a_journal(sim: DokuSimulator, tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    result = await cli(
        "payouts", "status", "X", "--journal", str(missing), env=sim_env(sim, tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0 or "not in" in result.stdout
    assert not missing.exists()


# ----------------------------------------------------------------- configuration errors


async def test_missing_credentials_exit_5_without_traceback(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    csv_path = write_csv(tmp_path / "p.csv", rows(2))
    env = base_env(tmp_path)
    env["DOKU_CUSTOMER_NUMBER"] = CUSTOMER
    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(tmp_path / "run.db"), env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 5, result
    assert "configuration error: DOKU_CLIENT_ID is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run.db").exists()
    assert not (tmp_path / "run.db.lock").exists()

    status = await cli("payouts", "status", "X", env=env, cwd=tmp_path)
    assert status.returncode == 5
    assert "configuration error:" in status.stderr
    assert "Traceback" not in status.stderr

    no_customer = {k: v for k, v in sim_env(sim, tmp_path).items() if k != "DOKU_CUSTOMER_NUMBER"}
    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(tmp_path / "other.db"),
        env=no_customer, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 5
    assert "--customer-number" in result.stderr
    assert "Traceback" not in result.stderr

    result = await cli(
        "payouts", "resume", str(tmp_path / "absent.db"), env=sim_env(sim, tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 5
    assert "no journal at" in result.stderr
    assert not (tmp_path / "absent.db").exists()

    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(tmp_path / "third.db"),
        "--check-balance", env=sim_env(sim, tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 5  # --check-balance needs an agent key
    assert "--check-balance needs the agent key" in result.stderr
    assert not (tmp_path / "third.db").exists()
    assert sim.requests_for("transfer_bank") == []
    assert sim.requests_for("account_inquiry") == []


async def test_rejected_credentials_exit_5(sim: DokuSimulator, tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "p.csv", rows(3))
    env = sim_env(sim, tmp_path, DOKU_CLIENT_ID="BRN-0001-0000000000000")
    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(tmp_path / "run.db"), env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert sim.transfers == {}
    assert "Traceback" not in result.stderr
    assert result.returncode == 5, result


async def test_check_balance_short_exits_nonzero_and_sends_no_transfer(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    async with DokuSimulator(credentials=creds, balance="1000.00") as sim:
        csv_path = write_csv(tmp_path / "p.csv", rows(3))
        result = await cli(
            "payouts", "run", str(csv_path), "--journal", str(tmp_path / "run.db"),
            "--check-balance", "--agent-key", creds.agent_key,
            env=sim_env(sim, tmp_path), cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode != 0, result
        assert "does not cover" in result.stderr
        assert {r.operation for r in sim.requests} == {"token", "balance_inquiry"}
        assert sim.transfers == {}
        assert sim.balance() == Decimal("1000.00")


async def test_check_balance_short_is_reported_without_traceback(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    async with DokuSimulator(credentials=creds, balance="1000.00") as sim:
        csv_path = write_csv(tmp_path / "p.csv", rows(3))
        result = await cli(
            "payouts", "run", str(csv_path), "--journal", str(tmp_path / "run.db"),
            "--check-balance", "--agent-key", creds.agent_key,
            env=sim_env(sim, tmp_path), cwd=tmp_path,
        )  # fmt: skip
        assert sim.transfers == {}
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode in (4, 5), result


# ------------------------------------------------------------- interrupted, resumed


async def test_sigint_stops_gracefully_and_resume_finishes(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    sim.inject("transfer_bank", "latency", delay=0.1, times=1000)
    refs, db, env, proc = await start_run(sim, tmp_path, 30, prefix="INT", concurrency=2)
    try:
        await wait_until(lambda: len(sim.requests_for("transfer_bank")) >= 3)
        proc.send_signal(signal.SIGINT)
        result = await finish(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert result.returncode == 130, result
    assert "stopping: finishing payouts in flight" in result.stderr
    assert "Traceback" not in result.stderr
    await sim.drain()
    sim.faults.clear()

    states = journal_states(db)
    # In-flight payouts finished and were journaled: nothing is left half-sent.
    assert set(states.values()) <= {"planned", "succeeded"}, Counter(states.values())
    paid = {ref for ref, state in states.items() if state == "succeeded"}
    assert 1 <= len(paid) < 30
    assert set(transfer_requests_by_ref(sim)) == paid
    assert f"succeeded {len(paid)} " in result.stdout

    resumed = await cli("payouts", "resume", str(db), env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed
    assert f"skipped {len(paid)}" in resumed.stdout
    assert f"succeeded {30 - len(paid)} " in resumed.stdout
    assert journal_states(db) == dict.fromkeys(refs, "succeeded")
    per_ref = transfer_requests_by_ref(sim)
    for ref in refs:
        assert sim.transfer_count(ref) == 1
        assert per_ref[ref] == 1


async def test_sigkill_mid_transfer_then_resume_settles_without_resending(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    # The first four transfers hang, then commit after 2 s, long after the process is dead.
    # The fault is queued before the process starts: injecting it once the run is under way
    # races the run, which can finish all 20 transfers before the test sees the first one.
    sim.inject("transfer_bank", "latency", delay=2.0, times=4)
    refs, db, env, proc = await start_run(sim, tmp_path, 20, prefix="KILL", concurrency=4)
    try:
        await wait_until(lambda: len(in_flight_transfers(sim)) >= 2)
        hanging = set(in_flight_transfers(sim))
        proc.kill()  # the process dies with transfers in flight
        await asyncio.wait_for(proc.wait(), TIMEOUT)
        await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    await sim.drain()
    sim.faults.clear()

    states = journal_states(db)
    sending = {ref for ref, state in states.items() if state == "sending"}
    assert hanging <= sending
    for ref in hanging:
        assert sim.transfer_count(ref) == 1  # committed while the process was dead
    checks_before = len(sim.requests_for("check_status"))

    out = tmp_path / "out.csv"
    resumed = await cli("payouts", "resume", str(db), "--out", str(out), env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed
    assert journal_states(db) == dict.fromkeys(refs, "succeeded")
    settled = [
        body_of(r)["originalPartnerReferenceNo"]
        for r in sim.requests_for("check_status")[checks_before:]
    ]
    per_ref = transfer_requests_by_ref(sim)
    by_ref = {r["reference"]: r for r in read_results(out)}
    for ref in hanging:
        assert ref in settled
        assert per_ref[ref] == 1  # settled, not sent again
        assert by_ref[ref]["status"] == "succeeded"
        assert by_ref[ref]["external_id"] == sim.transfers[ref].external_id
    for ref in refs:
        assert sim.transfer_count(ref) == 1


# ------------------------------------------------------------- main() in this process


@contextmanager
def threaded_sim(creds: SimulatorCredentials) -> Iterator[DokuSimulator]:
    """A simulator on its own loop in a thread, so ``main()`` can ``asyncio.run`` here."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="doku-sim", daemon=True)
    thread.start()

    async def make() -> DokuSimulator:
        simulator = DokuSimulator(credentials=creds)
        await simulator.start()
        return simulator

    try:
        simulator = asyncio.run_coroutine_threadsafe(make(), loop).result(10)
        try:
            yield simulator
        finally:
            asyncio.run_coroutine_threadsafe(simulator.close(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def set_sim_env(monkeypatch: pytest.MonkeyPatch, sim: DokuSimulator, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("DOKU_"):
            monkeypatch.delenv(name)
    for name, value in sim_env(sim, tmp_path).items():
        if name.startswith("DOKU_"):
            monkeypatch.setenv(name, value)


@pytest.mark.timeout(60)
def test_main_in_process_invalid_csv_returns_4_and_sends_nothing(
    creds: SimulatorCredentials,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "R-1,014,123,A,1e-3,\nR-2,014,12x,A,10,\n", encoding="utf-8")
    db = tmp_path / "run.db"
    with threaded_sim(creds) as sim:
        set_sim_env(monkeypatch, sim, tmp_path)
        assert main(["payouts", "run", str(bad), "--journal", str(db)]) == 4
        assert sim.requests == []
    err = capsys.readouterr().err
    assert "line 2: amount: must have at most 2 decimal places" in err
    assert "line 3: account_number: may contain only digits 0-9" in err
    assert "Nothing was sent." in err
    assert not db.exists()


@pytest.mark.timeout(60)
def test_main_in_process_run_resume_status(
    creds: SimulatorCredentials,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    csv_path = write_csv(tmp_path / "p.csv", rows(5, prefix="INPROC"))
    refs = [r[0] for r in rows(5, prefix="INPROC")]
    db = tmp_path / "run.db"
    out = tmp_path / "out.csv"
    with threaded_sim(creds) as sim:
        set_sim_env(monkeypatch, sim, tmp_path)
        argv = ["payouts", "run", str(csv_path), "--journal", str(db), "--out", str(out)]
        assert main([*argv, "--concurrency", "2", "--rate", "500"]) == 0
        assert [r["status"] for r in read_results(out)] == ["succeeded"] * 5
        assert main(["payouts", "resume", str(db)]) == 0
        assert main(["payouts", "status", refs[0], "--journal", str(db)]) == 0
        for ref in refs:
            assert sim.transfer_count(ref) == 1
        assert len(sim.requests_for("transfer_bank")) == 5
    stdout = capsys.readouterr().out
    assert "succeeded 5 (IDR 750,000.00)" in stdout
    assert "skipped 5" in stdout
    assert "journal: succeeded" in stdout
    assert "DOKU: 00 (" in stdout
    assert journal_states(db) == dict.fromkeys(refs, "succeeded")


# ---------------------------------------------------------------------------- demo


async def test_demo_pays_nobody_twice(tmp_path: Path) -> None:
    result = await cli(
        "demo", "--items", "200", "--concurrency", "16", env=base_env(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert "  paid twice       0" in lines
    assert "  items            200" in lines

    # The summary comes from the journal once the (confirmed) notifications settled it: the
    # two UNPAID-then-FAILED payouts are failed, the refunded one is not counted as succeeded.
    def count(state: str) -> int:
        (line,) = [line for line in lines if line.startswith(f"  {state:<16} ")]
        return int(line.split()[1])

    assert count("unknown") == count("pending") == count("accepted") == 0
    assert count("failed") == 2
    assert count("refunded") == 1
    assert count("succeeded") == 197
    notifications = [line for line in lines if line.startswith("  notifications    ")]
    assert len(notifications) == 1
    assert "unpaid -> succeeded: 2" in notifications[0]
    assert "unpaid -> failed: 2" in notifications[0]
    assert "refund -> refunded: 1" in notifications[0]
    assert "Traceback" not in result.stderr
