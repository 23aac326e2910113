"""The command line over a PostgreSQL journal (issue 16), end to end in subprocesses:
``journal migrate``, ``payouts plan`` (once; another file refused), ``payouts run`` then
``status``, ``journal export``, ``reconcile`` and ``resume`` from "another machine" (a fresh
process), and the database password never printed."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cli_process import cli, finish, killed_on_exit, sim_env, start, write_items
from helpers import numbered_items, wait_until
from postgres import fresh_schema
from test_cli import set_sim_env, threaded_sim

from doku_async.bulk import payout_item
from doku_async.cli import main
from doku_async.testing import DokuSimulator, SimulatorCredentials


async def test_migrate_twice(sim: DokuSimulator, tmp_path: Path) -> None:
    env = sim_env(sim, tmp_path)
    with fresh_schema("doku_mig") as url:
        first = await cli("journal", "migrate", url, env=env, cwd=tmp_path)
        again = await cli("journal", "migrate", url, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "schema version 0 -> 1" in first.stdout
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout


async def test_plan_once_then_another_file_is_refused(
    pg_url: str, sim: DokuSimulator, tmp_path: Path
) -> None:
    env = sim_env(sim, tmp_path)
    batch = numbered_items(12, "CLIPLAN", cents="25")
    first = write_items(tmp_path / "a.csv", batch)
    other = write_items(tmp_path / "b.csv", batch[:6])
    planned = await cli(
        "payouts", "plan", str(first), "--journal", pg_url, "--run-id", "p", env=env, cwd=tmp_path
    )
    same = await cli(
        "payouts", "plan", str(first), "--journal", pg_url, "--run-id", "p", env=env, cwd=tmp_path
    )
    refused = await cli(
        "payouts", "run", str(other), "--journal", pg_url, "--run-id", "p", env=env, cwd=tmp_path
    )
    assert planned.returncode == 0, planned.stderr
    assert "planned 12 new item(s)" in planned.stdout
    assert "planned 0 new item(s)" in same.stdout
    assert refused.returncode == 4, refused
    assert "planned from another file" in refused.stderr
    assert sim.requests_for("transfer_bank") == []


@pytest.fixture
async def slow_sim(creds: SimulatorCredentials) -> AsyncIterator[DokuSimulator]:
    """A simulator whose UNPAID transfers settle after 1 s: a run without --wait-final leaves
    them pending."""
    async with DokuSimulator(credentials=creds, notification_delay=1.0) as simulator:
        yield simulator


async def test_run_then_any_machine_sees_and_finishes_it(
    pg_url: str, slow_sim: DokuSimulator, tmp_path: Path
) -> None:
    sim = slow_sim
    env = sim_env(sim, tmp_path)
    unpaid = payout_item(  # sandbox magic value: UNPAID, then SUCCESS
        reference="CLIRUN-UNPAID",
        bank_code="014",
        account_number="9900012345",
        account_name="DRIVER U",
        amount="12345.00",
        line=40,
    )
    batch = [*numbered_items(30, "CLIRUN", cents="25"), unpaid]
    csv_path = write_items(tmp_path / "p.csv", batch)
    shared = ("--journal", pg_url, "--run-id", "e2e")
    run = await cli(
        "payouts", "run", str(csv_path), *shared, "--out", str(tmp_path / "out.csv"),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 3, run.stderr  # the UNPAID one is pending
    assert "payouts reconcile 'postgresql://" in run.stdout
    assert "--run-id e2e' to follow 1 payout(s)" in run.stdout
    assert all(sim.transfer_count(item.reference) == 1 for item in batch)
    async with asyncio.timeout(10):
        await sim.drain()  # DOKU settles the UNPAID transfer
    reference = batch[0].reference
    status = await cli("payouts", "status", reference, *shared, env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "journal: succeeded" in status.stdout
    export = await cli("journal", "export", pg_url, "--run-id", "e2e", "--format", "jsonl",
                       env=env, cwd=tmp_path)  # fmt: skip
    rows = [json.loads(line) for line in export.stdout.splitlines()]
    assert [row["reference"] for row in rows] == [item.reference for item in batch]
    assert {row["state"] for row in rows} == {"succeeded", "pending"}
    reconcile = await cli("payouts", "reconcile", pg_url, "--run-id", "e2e", env=env, cwd=tmp_path)
    assert reconcile.returncode == 0, reconcile.stderr
    assert "CLIRUN-UNPAID: pending -> succeeded" in reconcile.stdout
    sent = len(sim.requests_for("transfer_bank"))
    resume = await cli("payouts", "resume", pg_url, "--run-id", "e2e", env=env, cwd=tmp_path)
    assert resume.returncode == 0, resume.stderr
    assert len(sim.requests_for("transfer_bank")) == sent  # nothing paid twice


async def test_the_database_password_is_never_printed(sim: DokuSimulator, tmp_path: Path) -> None:
    env = sim_env(sim, tmp_path)
    secret = "pw-never-printed-4711"
    url = f"postgresql://doku:{secret}@127.0.0.1:1/payouts"
    results = [
        await cli("payouts", "resume", url, "--run-id", "r", "--journal-retry", "0.3",
                  env=env, cwd=tmp_path),
        await cli("payouts", "status", "REF-1", "--journal", url, env=env, cwd=tmp_path,
                  timeout=60),
        await cli("journal", "migrate", url, env=env, cwd=tmp_path, timeout=60),
        await cli("journal", "export", url, env=env, cwd=tmp_path, timeout=60),
    ]  # fmt: skip
    backup = await cli("journal", "backup", url, str(tmp_path / "b.db"), env=env, cwd=tmp_path)
    assert backup.returncode == 5, backup
    assert "pg_dump" in backup.stderr
    results.append(backup)
    assert [result.returncode for result in results] == [6, 6, 6, 6, 5], results
    for result in results:
        assert secret not in result.stdout + result.stderr
        assert "doku:***@127.0.0.1" in result.stderr
        assert "Traceback" not in result.stderr


async def test_ctrl_c_lets_in_flight_finish_then_another_machine_resumes(
    pg_url: str, sim: DokuSimulator, tmp_path: Path
) -> None:
    env = sim_env(sim, tmp_path)
    batch = numbered_items(80, "CLIINT", cents="25")
    csv_path = write_items(tmp_path / "p.csv", batch)
    sim.inject("transfer_bank", "latency", delay=0.05, times=len(batch))
    proc = await start(
        "payouts", "run", str(csv_path), "--journal", pg_url, "--run-id", "int",
        "--concurrency", "4", env=env, cwd=tmp_path,
    )  # fmt: skip
    async with killed_on_exit(proc):
        await wait_until(lambda: len(sim.transfers) >= 8)
        proc.send_signal(signal.SIGINT)
        stopped = await finish(proc)
    assert stopped.returncode == 130, stopped
    assert "stopping: finishing payouts in flight" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    paid_by_first = len(sim.transfers)
    assert paid_by_first < len(batch)
    resume = await cli("payouts", "resume", pg_url, "--run-id", "int", env=env, cwd=tmp_path)
    assert resume.returncode == 0, resume.stderr
    assert all(sim.transfer_count(item.reference) == 1 for item in batch)


@pytest.mark.timeout(90)
def test_main_in_process_over_a_shared_run(
    pg_url: str,
    creds: SimulatorCredentials,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same commands through ``main()`` in this process (the simulator on a thread)."""
    batch = numbered_items(6, "INPROCPG", cents="25")
    csv_path = write_items(tmp_path / "p.csv", batch)
    out = tmp_path / "out.csv"
    shared = ["--journal", pg_url, "--run-id", "inproc"]
    with threaded_sim(creds) as sim:
        set_sim_env(monkeypatch, sim, tmp_path)
        assert main(["journal", "migrate", pg_url]) == 0
        assert main(["payouts", "plan", str(csv_path), *shared]) == 0
        assert main(["payouts", "join", "inproc", "--journal", pg_url, "--out", str(out)]) == 0
        assert main(["payouts", "resume", pg_url, "--run-id", "inproc"]) == 0
        assert main(["payouts", "reconcile", pg_url, "--run-id", "inproc"]) == 0
        assert main(["payouts", "status", batch[0].reference, *shared]) == 0
        export = tmp_path / "export.csv"
        assert main(["journal", "export", pg_url, "--run-id", "inproc", "--out", str(export)]) == 0
        assert all(sim.transfer_count(item.reference) == 1 for item in batch)
    stdout = capsys.readouterr().out
    assert "planned 6 new item(s)" in stdout
    assert "succeeded 6" in stdout
    assert "journal: succeeded" in stdout
    assert len(export.read_text(encoding="utf-8").splitlines()) == 7  # header + 6
    assert len(out.read_text(encoding="utf-8").splitlines()) == 7


async def test_caps_and_dry_run_refuse_a_shared_run_before_anything_is_sent(
    pg_url: str, sim: DokuSimulator, tmp_path: Path
) -> None:
    # The caps hold on every path that can pay: run (the file), join and resume (the plan).
    env = sim_env(sim, tmp_path)
    path = write_items(
        tmp_path / "caps.csv", numbered_items(5, "CLICAP", cents="25")
    )  # 10,000.25 .. 10,004.25
    shared = ("--journal", pg_url, "--run-id", "caps")
    over_total = await cli(
        "payouts", "run", str(path), *shared, "--max-total", "50000", env=env, cwd=tmp_path
    )
    assert over_total.returncode == 4, over_total
    assert "--max-total" in over_total.stderr
    assert "Nothing was sent." in over_total.stderr

    planned = await cli("payouts", "plan", str(path), *shared, env=env, cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    joined = await cli(
        "payouts",
        "join",
        "caps",
        "--journal",
        pg_url,
        "--max-amount",
        "10002",
        env=env,
        cwd=tmp_path,
    )
    assert joined.returncode == 4, joined
    assert "over --max-amount" in joined.stderr
    dry = await cli("payouts", "run", str(path), *shared, "--dry-run", env=env, cwd=tmp_path)
    assert dry.returncode != 0, dry
    assert "payouts validate" in dry.stderr
    assert sim.requests_for("transfer_bank") == []
    assert sim.requests_for("account_inquiry") == []
