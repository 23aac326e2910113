"""Regressions of issue 12's review of the bulk payout journal, items 3, 4, 5 and 8.

3. Planning was autocommitted row by row: a crash while planning left a partial plan that a
   resume paid as if complete, silently skipping every payee not planned yet.
4. Two processes over one journal both ran (a double-started cron job).
5. The journal is three files (WAL): copying ``run.db`` alone lost records; and a reference DOKU
   had already paid was reported as paid by this run.
8. Journal failures ended in a raw traceback and exit 1 ("failed, nothing paid").

The CLI runs as real OS processes against the simulator (see ``cli_process``).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from cli_process import (
    KILL_DURING_PLAN,
    cli,
    finish,
    in_flight,
    kill,
    killed_on_exit,
    read_results,
    sim_env,
    start,
    start_python,
    transfer_refs,
    write_items,
)
from helpers import committed_states, fail_writes_of, real_time_client, wait_until

from doku_async.bulk import (
    BulkRunner,
    IncompletePlanError,
    ItemResult,
    Journal,
    JournalLockedError,
    LockHolder,
    PayoutItem,
    PlanMismatchError,
    PlanSource,
    ResultWriter,
    payout_item,
    read_payout_file,
)
from doku_async.bulk._lock import read_holder
from doku_async.cli import _print_summary, main
from doku_async.testing import DokuSimulator, SimulatorCredentials

CUSTOMER = "628115678890"
TIMEOUT = 30.0

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def sim(creds: SimulatorCredentials) -> AsyncIterator[DokuSimulator]:
    async with DokuSimulator(credentials=creds, notification_delay=0) as simulator:
        yield simulator


def items_of(count: int, prefix: str, *, amount: str = "150000.00") -> list[PayoutItem]:
    return [
        payout_item(
            reference=f"{prefix}-{i:04d}",
            bank_code="014",
            account_number=f"8{i:09d}",
            account_name=f"Driver {i}",
            amount=amount,
            line=i + 2,
        )
        for i in range(count)
    ]


def source_of(path: Path) -> PlanSource:
    payouts = read_payout_file(path)
    return PlanSource(payouts.rows, payouts.sha256, payouts.name)


def assert_each_paid_once(sim: DokuSimulator, refs: list[str]) -> None:
    assert {ref: sim.transfer_count(ref) for ref in refs} == dict.fromkeys(refs, 1)


# ----------------------------------------------------------------------------- item 3


def test_issue12_3_plan_is_one_transaction_that_records_the_file(tmp_path: Path) -> None:
    items = items_of(1000, "PLAN")
    csv_path = write_items(tmp_path / "p.csv", items)
    source = source_of(csv_path)
    journal = Journal(tmp_path / "run.db")
    statements: list[str] = []
    journal._db.set_trace_callback(statements.append)

    def broken() -> Iterator[PayoutItem]:  # a crash (a full disk) half way through planning
        for i, item in enumerate(items):
            if i == 500:
                raise OSError("disk full")
            yield item

    with pytest.raises(OSError, match="disk full"):
        journal.plan(broken())
    assert journal.counts() == {}  # nothing half planned
    assert journal.plan_record() is None
    with pytest.raises(IncompletePlanError, match="no record of a complete plan"):
        journal.check_plan_complete()

    statements.clear()
    assert journal.plan(items, source=source) == 1000
    assert statements.count("COMMIT") == 1  # one transaction, not one per row
    record = journal.check_plan_complete()
    assert (record.rows, record.sha256, record.name) == (1000, source.sha256, "p.csv")
    assert len(record.sha256) == 64

    # The same file again: nothing new, the record kept. Another file: refused, unwritten.
    assert journal.plan(items, source=source) == 0
    other = PlanSource(1000, "0" * 64, "other.csv")
    with pytest.raises(PlanMismatchError, match="planned from another file"):
        journal.plan(items_of(1001, "PLAN"), source=other)
    assert sum(journal.counts().values()) == 1000
    journal.close()

    # Rows lost after the plan (a journal copied without its WAL, say): resume refused.
    db = sqlite3.connect(tmp_path / "run.db")
    db.execute("DELETE FROM items WHERE line > 900")
    db.commit()
    db.close()
    reopened = Journal(tmp_path / "run.db")
    with pytest.raises(IncompletePlanError, match="holds 899 of the 1000 planned rows") as caught:
        reopened.check_plan_complete()
    assert (caught.value.planned, caught.value.expected) == (899, 1000)
    reopened.close()


async def test_issue12_3_killed_while_planning_resume_is_refused_and_the_same_file_completes(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    """The reported failure: a plan killed after some rows, then ``payouts resume``. It paid
    the rows planned and exited 0, skipping the rest. Now: refused, nothing sent; another file
    refused; the same file completes the plan and pays everyone exactly once."""
    items = items_of(60, "KPLAN")
    refs = [item.reference for item in items]
    csv_path = write_items(tmp_path / "p.csv", items)
    db = tmp_path / "run.db"
    env = sim_env(sim, tmp_path)
    # Planned the way it was before the fix (autocommitted rows), killed after 25 rows.
    proc = await start_python(
        KILL_DURING_PLAN, str(csv_path), str(db), "25", "legacy", cwd=tmp_path
    )
    async with killed_on_exit(proc):
        killed = await finish(proc)
    assert killed.returncode == -9, killed
    assert len(committed_states(db)) == 25

    resumed = await cli("payouts", "resume", str(db), env=env, cwd=tmp_path)
    assert resumed.returncode == 4, resumed
    assert "holds 25 item(s) but no record of a complete plan" in resumed.stderr
    assert "payouts run FILE --journal JOURNAL" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert sim.requests == []

    other = write_items(tmp_path / "other.csv", items_of(60, "OTHER"))
    refused = await cli("payouts", "run", str(other), "--journal", str(db), env=env, cwd=tmp_path)
    assert refused.returncode == 4, refused
    assert "holds 25 reference(s) this file lacks" in refused.stderr
    assert sim.requests == []

    done = await cli("payouts", "run", str(csv_path), "--journal", str(db), env=env, cwd=tmp_path)
    assert done.returncode == 0, done
    assert "succeeded 60 (IDR 9,000,000.00)" in done.stdout
    assert_each_paid_once(sim, refs)
    assert set(committed_states(db).values()) == {"succeeded"}

    # The plan is recorded now: a changed file (one amount edited) is refused, nothing sent.
    edited = items_of(60, "KPLAN")
    edited[7] = payout_item(
        reference=edited[7].reference,
        bank_code="014",
        account_number=edited[7].account_number,
        account_name=edited[7].account_name,
        amount="1.00",
        line=9,
    )
    changed = write_items(tmp_path / "edited.csv", edited)
    sent = len(sim.requests_for("transfer_bank"))
    refused = await cli("payouts", "run", str(changed), "--journal", str(db), env=env, cwd=tmp_path)
    assert refused.returncode == 4, refused
    assert "was planned from another file (p.csv: 60 rows" in refused.stderr
    assert len(sim.requests_for("transfer_bank")) == sent


# ----------------------------------------------------------------------------- item 4


async def test_issue12_4_a_second_process_is_refused_at_once_naming_the_holder(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    # About 3 s of run (12 rounds of 2 transfers held 0.25 s): the others start well inside it.
    sim.inject("transfer_bank", "latency", delay=0.25, times=1000)
    items = items_of(24, "TWO")
    refs = [item.reference for item in items]
    csv_path = write_items(tmp_path / "p.csv", items)
    db = tmp_path / "run.db"
    env = sim_env(sim, tmp_path)
    first = await start(
        "payouts", "run", str(csv_path), "--journal", str(db), "--concurrency", "2",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    async with killed_on_exit(first):
        await wait_until(lambda: len(transfer_refs(sim)) >= 2)
        began = time.monotonic()
        second, resumed = await asyncio.gather(
            cli("payouts", "run", str(csv_path), "--journal", str(db), env=env, cwd=tmp_path),
            cli("payouts", "resume", str(db), env=env, cwd=tmp_path),
        )
        assert first.returncode is None  # refused while the first was still paying
        refused_in = time.monotonic() - began
        result = await finish(first)
    for other in (second, resumed):
        assert other.returncode == 7, other
        assert f"in use by pid {first.pid} on host {socket.gethostname()} since " in other.stderr
        assert "nothing was read, written or sent" in other.stderr
        assert "database is locked" not in other.stderr
        assert "Traceback" not in other.stderr
    assert refused_in < 15
    assert result.returncode == 0, result
    assert "succeeded 24 " in result.stdout
    assert Counter(transfer_refs(sim)) == Counter(refs)  # each sent once, by the first
    assert_each_paid_once(sim, refs)
    assert read_holder(str(db)) is None  # released at the end


async def test_issue12_4_a_sigkilled_holder_is_taken_over(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    sim.inject("transfer_bank", "latency", delay=1.0, times=2)
    items = items_of(10, "DEAD")
    refs = [item.reference for item in items]
    csv_path = write_items(tmp_path / "p.csv", items)
    db = tmp_path / "run.db"
    env = sim_env(sim, tmp_path)
    proc = await start(
        "payouts", "run", str(csv_path), "--journal", str(db), "--concurrency", "2",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    async with killed_on_exit(proc):
        await wait_until(lambda: len(in_flight(sim)) >= 1)
        await kill(proc)
    holder = read_holder(str(db))
    assert holder is not None
    assert (holder.pid, holder.host) == (proc.pid, socket.gethostname())  # left behind
    await sim.drain()
    sim.faults.clear()
    resumed = await cli("payouts", "resume", str(db), env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed
    assert f"taking over the journal lock of pid {proc.pid}" in resumed.stderr
    assert_each_paid_once(sim, refs)
    assert read_holder(str(db)) is None


def write_holder(db: Path, **fields: object) -> None:
    record = {"pid": 4242, "host": "batch-2", "since": time.time() - 600, "hb": time.time()}
    record.update(fields)
    (db.parent / (db.name + ".lock")).write_text(json.dumps(record))


async def test_issue12_4_another_hosts_lock_needs_its_lease_to_expire_or_break_lock(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    db = tmp_path / "run.db"
    Journal(db).close()
    write_holder(db)  # another host, heartbeat fresh: it may still be running
    with pytest.raises(JournalLockedError, match="host batch-2") as caught:
        Journal(db)
    holder = caught.value.holder
    assert isinstance(holder, LockHolder)
    assert (holder.pid, holder.host) == (4242, "batch-2")
    assert "--break-lock" in caught.value.message
    Journal(db, break_lock=True).close()  # the operator knows that run is over

    write_holder(db, hb=time.time() - 120)  # its lease (60 s) ran out: abandoned
    Journal(db).close()

    dead = subprocess.run(  # noqa: ASYNC221 - a short-lived process, bounded
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    write_holder(db, pid=int(dead.stdout), host=socket.gethostname())  # this host, dead pid
    Journal(db).close()

    # A live holder in this process: another OS process is refused at once, naming it.
    held = Journal(db)
    try:
        probe = subprocess.run(  # noqa: S603, ASYNC221 - must block: this loop holds nothing
            [
                sys.executable,
                "-c",
                "import sys\nfrom doku_async.bulk import Journal, JournalLockedError\n"
                "try:\n    Journal(sys.argv[1])\nexcept JournalLockedError as e:\n"
                "    print(e.message)\n    sys.exit(7)\n",
                str(db),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert probe.returncode == 7, probe
        assert f"in use by pid {os.getpid()} on host {socket.gethostname()}" in probe.stdout
        # A second journal object of the same process shares the lock.
        Journal(db).close()
        assert held.locked
    finally:
        held.close()

    # The CLI: refused with exit 7 and the hint; --break-lock goes ahead.
    write_holder(db)
    items = items_of(3, "BRK")
    csv_path = write_items(tmp_path / "p.csv", items)
    env = sim_env(sim, tmp_path)
    refused = await cli(
        "payouts", "run", str(csv_path), "--journal", str(db), env=env, cwd=tmp_path
    )
    assert refused.returncode == 7, refused
    assert "pid 4242 on host batch-2" in refused.stderr
    assert "--break-lock" in refused.stderr
    assert sim.requests == []
    broken = await cli(
        "payouts", "run", str(csv_path), "--journal", str(db), "--break-lock",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert broken.returncode == 0, broken
    assert_each_paid_once(sim, [item.reference for item in items])


# ----------------------------------------------------------------------------- item 5


def test_issue12_5_close_leaves_one_file_and_backup_copies_a_live_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "run.db"
    items = items_of(50, "BAK")
    journal = Journal(db)
    journal.plan(items)
    for item in items[:10]:
        journal.mark_sending(item, "12345")
        journal.record(item, "succeeded", code="00", reference_no="DK1")
    journal.mark_sending(items[10], "67890")
    assert Path(f"{db}-wal").stat().st_size > 0  # the latest transactions live in the WAL

    # A live journal (held open by this "run"): the backup is one consistent file.
    dest = tmp_path / "copy.db"
    assert main(["journal", "backup", str(db), str(dest)]) == 0
    assert "backed up 50 items" in capsys.readouterr().out
    assert not Path(f"{dest}-wal").exists()
    assert committed_states(dest) == {
        **dict.fromkeys((i.reference for i in items), "planned"),
        **dict.fromkeys((i.reference for i in items[:10]), "succeeded"),
        items[10].reference: "sending",
    }
    copy = sqlite3.connect(dest)
    assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    copy.close()
    assert main(["journal", "backup", str(db), str(dest)]) == 4  # never overwrites
    assert "exists" in capsys.readouterr().err

    out = tmp_path / "export.csv"
    assert main(["journal", "export", str(db), "--out", str(out)]) == 0
    rows = read_results(out)
    assert [r["reference"] for r in rows] == [i.reference for i in items]
    assert rows[0]["state"] == "succeeded"
    assert rows[10]["state"] == "sending"
    assert rows[10]["external_id"] == "67890"
    assert rows[20]["amount"] == "150000.00"
    capsys.readouterr()
    assert main(["journal", "export", str(db), "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 50
    assert json.loads(lines[0])["reference_no"] == "DK1"

    journal.close()  # checkpointed: run.db alone now holds everything
    wal = Path(f"{db}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    alone = tmp_path / "alone.db"
    alone.write_bytes(db.read_bytes())
    assert committed_states(alone) == committed_states(dest)


async def test_issue12_5_rerun_after_a_lost_journal_reports_already_paid_not_paid_now(
    sim: DokuSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = items_of(20, "LOST")
    total = sum((i.amount for i in items), Decimal("0.00"))
    async with asyncio.timeout(TIMEOUT), real_time_client(sim) as doku:
        async with BulkRunner(doku, customer_number=CUSTOMER, journal=tmp_path / "a.db") as first:
            paid = await first.run(items)
        assert (paid.already_paid, paid.amount_paid) == (0, total)
        results: list[ItemResult] = []
        # The journal is lost: the same file over a new one.
        async with BulkRunner(doku, customer_number=CUSTOMER, journal=tmp_path / "b.db") as again:
            summary = await again.run(items, on_result=results.append)
    assert_each_paid_once(sim, [i.reference for i in items])
    assert {r.status for r in results} == {"succeeded"}
    assert all(r.already_paid for r in results)
    assert all(r.message.startswith("already paid before this run") for r in results)
    assert (summary.already_paid, summary.amount_already_paid) == (20, total)
    assert summary.amount_paid == Decimal("0.00")  # nothing paid by this run
    assert summary.exit_code == 0
    assert set(committed_states(tmp_path / "b.db").values()) == {"succeeded"}

    writer = ResultWriter(tmp_path / "out.csv")
    writer.write(results[0])
    writer.close()
    assert read_results(tmp_path / "out.csv")[0]["status"] == (
        "succeeded (already paid before this run)"
    )
    _print_summary(summary, "b.db")
    assert (
        "succeeded 20 (IDR 0.00; 20 already paid before this run: IDR 3,000,000.00, "
        "not paid again)" in capsys.readouterr().out
    )


# ----------------------------------------------------------------------------- item 8


async def test_issue12_8_a_failing_disk_exits_6_lists_items_in_doubt_and_completes_results(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    items = items_of(40, "DISK")
    refs = [item.reference for item in items]
    csv_path = write_items(tmp_path / "p.csv", items)
    db = tmp_path / "run.db"
    out = tmp_path / "out.csv"
    env = sim_env(sim, tmp_path)

    # The disk fails while planning: all or nothing, and nothing sent.
    Journal(db).close()
    fail_writes_of(db, refs[30])
    failed = await cli("payouts", "run", str(csv_path), "--journal", str(db), env=env, cwd=tmp_path)
    assert failed.returncode == 6, failed
    assert "journal error: could not plan, read or write the journal" in failed.stderr
    assert "Nothing was sent by this run (planning is all or nothing)" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert committed_states(db) == {}
    assert sim.requests == []

    # The disk fails mid-run: item 6's "sending" mark cannot be written while the first two
    # transfers hang at DOKU (they commit there: money moves, the outcome is never recorded).
    trigger = sqlite3.connect(db)
    trigger.execute("DROP TRIGGER refuse_insert")
    trigger.execute("DROP TRIGGER refuse_update")
    trigger.commit()
    trigger.close()
    fail_writes_of(db, refs[6])
    trigger = sqlite3.connect(db)
    trigger.execute("DROP TRIGGER refuse_insert")  # planning passes; the mark fails
    trigger.commit()
    trigger.close()
    sim.inject("transfer_bank", "latency", delay=0.5, times=2)
    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(db), "--out", str(out),
        "--concurrency", "4", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 6, result
    assert "journal error: could not write the journal" in result.stderr
    assert "the record may be incomplete" in result.stderr
    assert "Traceback" not in result.stderr
    await sim.drain()
    states = committed_states(db)
    listed = {
        line.split()[2] for line in result.stderr.splitlines() if line.startswith("  in doubt: ")
    }
    rows = {row["reference"]: row for row in read_results(out)}
    assert sorted(rows) == refs  # every item, once
    assert {refs[0], refs[1]} <= listed, result.stderr
    assert listed == {r for r, row in rows.items() if row["status"] == "unknown"}
    for ref in listed:
        assert states[ref] == "sending"  # marked, sent, outcome never recorded
        assert "in doubt" in rows[ref]["message"]
        assert rows[ref]["external_id"]
    for ref, row in rows.items():
        assert sim.transfer_count(ref) <= 1
        if row["status"] == "not sent":
            assert states[ref] in ("planned", "retry"), ref
            assert sim.transfer_count(ref) == 0, ref
    assert rows[refs[6]]["status"] == "not sent"
    assert sim.transfer_count(refs[6]) == 0

    # The disk is fixed: the resume settles the items in doubt and pays the rest, once each.
    trigger = sqlite3.connect(db)
    trigger.execute("DROP TRIGGER refuse_update")
    trigger.commit()
    trigger.close()
    sim.faults.clear()
    resumed = await cli("payouts", "resume", str(db), env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed
    assert_each_paid_once(sim, refs)
    assert set(committed_states(db).values()) == {"succeeded"}


def test_issue12_8_a_corrupt_journal_exits_6_with_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = write_items(tmp_path / "p.csv", items_of(3, "BAD"))
    db = tmp_path / "run.db"
    garbage = b"\x00\xffnot a journal\x13\x37" * 400
    db.write_bytes(garbage)
    for argv in (
        ["payouts", "run", str(csv_path), "--journal", str(db)],
        ["payouts", "resume", str(db)],
        ["payouts", "status", "BAD-0000", "--journal", str(db)],
        ["journal", "export", str(db)],
        ["journal", "backup", str(db), str(tmp_path / "copy.db")],
    ):
        assert main(argv) == 6, argv
        err = capsys.readouterr().err
        assert "journal error: could not " in err, argv
        assert "file is not a database" in err, argv
        assert "the record may be incomplete" in err, argv
        assert "Traceback" not in err
    assert db.read_bytes() == garbage  # never written to
    assert not (tmp_path / "copy.db").exists()
    assert read_holder(str(db)) is None  # the lock was given back each time
