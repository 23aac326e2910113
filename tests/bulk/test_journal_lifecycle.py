"""Issue 13: the journal is the single record of every payout's state and follows DOKU after
the run.

Each source of truth (the transfer's answer, check status, a notification through
``Journal.apply``, ``reconcile``, a resume) records an event, and a state moves only forward
whatever order they arrive in. ``payouts reconcile`` turns pending payouts into DOKU's final
word; exit codes and summaries count the whole journal. The simulator's magic values: bank
``002`` with an account containing ``12345`` stays UNPAID, then turns FAILED after
``notification_delay``; another bank turns SUCCESS; account ``7746555134`` is paid, then
refunded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from cli_process import cli, sim_env, write_items
from helpers import real_time_client, wait_until

from doku_async import RetryPolicy
from doku_async.bulk import (
    BulkRunner,
    Journal,
    JournalEvent,
    PayoutItem,
    PlanSource,
    payout_item,
    reconcile,
)
from doku_async.bulk._schema import SCHEMA_VERSION
from doku_async.testing import DokuSimulator, SimulatorCredentials

CUSTOMER = "628115678890"
TIMEOUT = 30.0
DELAY = 1.0  # notification_delay: long enough for the run's own check status to see UNPAID
V1_JOURNAL = Path(__file__).parent.parent / "data" / "journal_v1.db"
"""Written by the journal code before this issue (commit 3e23bff, schema 1): see its items."""

pytestmark = pytest.mark.timeout(90)


def item(reference: str, bank: str = "014", account: str = "8377388292") -> PayoutItem:
    return payout_item(
        reference=reference,
        bank_code=bank,
        account_number=account,
        account_name="FHILEA HERMANUS",
        amount=Decimal("150000"),
    )


UNPAID_THEN_FAILED = ("002", "9000012345")
UNPAID_THEN_PAID = ("014", "7000012345")
REFUNDED = ("014", "7746555134")


def states(events: list[JournalEvent]) -> list[tuple[str, str]]:
    return [(e.source, e.state) for e in events]


@pytest.fixture
async def sim(creds: SimulatorCredentials) -> AsyncIterator[DokuSimulator]:
    async with DokuSimulator(credentials=creds, notification_delay=DELAY) as simulator:
        yield simulator


# ------------------------------------------------------------------ Journal.apply and events


async def test_apply_moves_only_forward_and_records_every_event(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    it = item("A-1")
    journal.plan([it])
    await journal.mark_sending_grouped(it, "EXT1", session_id="S1")
    steps = [
        ("accepted", "answer", True),
        ("pending", "check_status", True),
        ("accepted", "answer", False),  # older: never overwrites pending
        ("succeeded", "notification", True),
        ("pending", "reconcile", False),
        ("failed", "notification", False),  # succeeded and failed never replace each other
        ("refunded", "reconcile", True),
        ("succeeded", "check_status", False),  # nothing replaces refunded
    ]
    for state, source, moves in steps:
        assert journal.apply(it.reference, state, source=source, code=state[:2]) is moves, state
    entry = journal.get(it.reference)
    assert entry is not None
    assert (entry.state, entry.code, entry.session_id) == ("refunded", "re", "S1")
    events = journal.events(it.reference)
    assert states(events) == [(source, state) for state, source, _ in steps]
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert all(e.code == e.state[:2] for e in events)
    journal.close()


async def test_apply_to_an_unknown_reference_records_nothing_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(tmp_path / "j.db")
    with caplog.at_level(logging.WARNING, logger="doku_async.bulk"):
        assert journal.apply("NOPE", "failed", source="notification") is False
    assert "NOPE" in caplog.text
    assert journal.events("NOPE") == []
    assert journal.counts() == {}
    with pytest.raises(ValueError, match="state"):
        journal.apply("NOPE", "sending", source="reconcile")
    with pytest.raises(ValueError, match="source"):
        journal.apply("NOPE", "failed", source="gossip")
    journal.close()


async def test_a_notification_before_the_answer_is_not_overwritten_by_the_older_accepted(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "j.db")
    it = item("N-1")
    await journal.mark_sending_grouped(it, "EXT1")
    # DOKU's word arrives first (a notification, confirmed), then the runner's older answer.
    assert journal.apply(it.reference, "failed", source="notification", code="06") is True
    journal.record_soon(it, "accepted", code="2004300", reference_no="DK00000042")
    entry = journal.find_by_reference_no("DK00000042")  # the queued answer carries it
    assert entry is not None
    assert (entry.item.reference, entry.state, entry.code) == ("N-1", "failed", "06")
    assert states(journal.events(it.reference)) == [
        ("notification", "failed"),
        ("answer", "accepted"),
    ]
    journal.close()


async def test_the_runner_path_moves_forward_and_retry_replaces_only_unsettled(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "j.db")
    a, b = item("R-1"), item("R-2")
    journal.record(a, "unknown", message="timed out")  # an earlier run could not settle it
    journal.record(a, "retry", message="not found at DOKU, then refused before sending")
    journal.record(b, "succeeded", code="00", reference_no="DK1", source="check_status")
    journal.record(b, "retry", message="stale")  # never over a final state
    journal.record(b, "unknown", message="older")
    assert journal.counts() == {"retry": 1, "succeeded": 1}
    entry = journal.get(b.reference)
    assert entry is not None
    assert (entry.code, entry.reference_no) == ("00", "DK1")
    assert states(journal.events(b.reference)) == [
        ("check_status", "succeeded"),
        ("answer", "retry"),
        ("answer", "unknown"),
    ]
    assert journal.find_by_reference_no("DK1") is not None
    assert journal.find_by_reference_no("DK-NONE") is None
    journal.close()


# ------------------------------------------------------------------------------ migration


def test_a_schema_1_journal_is_upgraded_in_place_and_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy(V1_JOURNAL, path)
    old = sqlite3.connect(path)
    assert old.execute("PRAGMA user_version").fetchone() == (0,)
    before = old.execute("SELECT * FROM items ORDER BY rowid").fetchall()
    old.close()

    journal = Journal(path)
    assert journal.counts() == {
        "succeeded": 1,
        "pending": 1,
        "sending": 1,
        "retry": 1,
        "planned": 1,
    }
    record = journal.check_plan_complete()  # the plan record survives
    assert (record.rows, record.name) == (5, "v1.csv")
    assert journal.meta()["customer_number"] == CUSTOMER
    pending = journal.find_by_reference_no("DK00000002")
    assert pending is not None
    assert (pending.item.reference, pending.state, pending.session_id) == ("V1-1", "pending", None)
    assert journal.events("V1-1") == []  # no history before the upgrade
    assert journal.apply("V1-1", "failed", source="reconcile", code="06") is True
    assert states(journal.events("V1-1")) == [("reconcile", "failed")]
    journal.close()

    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        after = db.execute("SELECT * FROM items ORDER BY rowid").fetchall()
        indexes = {row[1] for row in db.execute("PRAGMA index_list(items)")}
    finally:
        db.close()
    assert [row[:-1] for row in after if row[0] != "V1-1"] == [
        row for row in before if row[0] != "V1-1"
    ]  # every other row as it was, with a new empty session_id column
    assert "items_reference_no" in indexes
    # Opened again: already current, nothing to do; a read-only opener upgrades as well.
    Journal(path).close()
    copy = tmp_path / "copy.db"
    shutil.copy(V1_JOURNAL, copy)
    reader = Journal(copy, lock=False)
    assert reader.events("V1-0") == []
    reader.close()


def test_a_journal_from_a_newer_sdk_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(sqlite3.DatabaseError, match="newer"):
        Journal(path)


# ---------------------------------------------------------- the runner, then reconcile


async def test_the_runner_records_answers_with_session_reference_no_and_events(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "run.db")
    paid, unpaid = item("S-PAID"), item("S-UNPAID", *UNPAID_THEN_FAILED)
    async with asyncio.timeout(TIMEOUT), real_time_client(sim) as doku:
        runner = BulkRunner(doku, customer_number=CUSTOMER, journal=journal)
        summary = await runner.run([paid, unpaid])
    assert summary.counts["succeeded"] == 1
    assert summary.counts["pending"] == 1
    for it, state in ((paid, "succeeded"), (unpaid, "pending")):
        entry = journal.get(it.reference)
        transfer = sim.transfers[it.reference]
        assert entry is not None
        assert entry.state == state
        assert entry.reference_no == transfer.reference_no
        assert entry.session_id == transfer.session_id
        assert entry.session_id
        assert states(journal.events(it.reference)) == [("check_status", state)]
    found = journal.find_by_reference_no(sim.transfers["S-UNPAID"].reference_no)
    assert found is not None
    assert found.item.reference == "S-UNPAID"
    journal.close()


async def test_a_notification_during_the_run_is_kept_over_the_older_accepted(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    """The notification (applied as soon as the sending mark is on disk) says failed before
    the runner records DOKU's older answer, accepted: the journal stays failed."""

    class Notified(Journal):
        async def mark_sending_grouped(
            self, it: PayoutItem, external_id: str, *, session_id: str | None = None
        ) -> None:
            await super().mark_sending_grouped(it, external_id, session_id=session_id)
            self.apply(it.reference, "failed", source="notification", code="06")

    journal = Notified(tmp_path / "run.db")
    it = item("EARLY", *UNPAID_THEN_FAILED)
    async with (
        asyncio.timeout(TIMEOUT),
        sim.client(
            retry=RetryPolicy(jitter=False), confirm_transfers=False
        ) as doku,  # the answer alone: accepted
    ):
        runner = BulkRunner(doku, customer_number=CUSTOMER, journal=journal)
        summary = await runner.run([it])
    assert summary.counts["accepted"] == 1  # what this run's answer said
    entry = journal.get(it.reference)
    assert entry is not None
    assert entry.state == "failed"
    assert entry.reference_no == sim.transfers[it.reference].reference_no
    assert states(journal.events(it.reference)) == [
        ("notification", "failed"),
        ("answer", "accepted"),
    ]
    journal.close()


async def test_reconcile_turns_pending_and_paid_payouts_into_dokus_final_word(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "run.db")
    fails, pays, refunds, plain = (
        item("RC-FAIL", *UNPAID_THEN_FAILED),
        item("RC-LATE", *UNPAID_THEN_PAID),
        item("RC-REFUND", *REFUNDED),
        item("RC-PLAIN"),
    )
    async with asyncio.timeout(TIMEOUT), real_time_client(sim) as doku:
        runner = BulkRunner(doku, customer_number=CUSTOMER, journal=journal)
        await runner.run([fails, pays, refunds, plain])
        assert journal.counts() == {"pending": 2, "succeeded": 2}
        await wait_until(lambda: sim.transfers["RC-REFUND"].status == "04")
        await wait_until(lambda: sim.transfers["RC-FAIL"].status == "06")
        await wait_until(lambda: sim.transfers["RC-LATE"].status == "00")
        asked = len(sim.requests_for("check_status"))
        seen: list[str] = []
        report = await reconcile(doku, journal, rate=50, on_change=lambda c: seen.append(c.after))
        assert len(sim.requests_for("check_status")) == asked + 4  # each open or young item
        assert (report.checked, report.changed, report.errors) == (4, 3, 0)
        assert sorted(seen) == ["failed", "refunded", "succeeded"]
        # Settled: a second pass asks only about succeeded payouts still in the refund window.
        again = await reconcile(doku, journal, refund_window=0)
        assert (again.checked, again.changed) == (0, 0)
    assert {e.item.reference: e.state for e in journal.entries()} == {
        "RC-FAIL": "failed",
        "RC-LATE": "succeeded",
        "RC-REFUND": "refunded",
        "RC-PLAIN": "succeeded",
    }
    assert states(journal.events("RC-FAIL")) == [
        ("check_status", "pending"),
        ("reconcile", "failed"),
    ]
    assert states(journal.events("RC-REFUND")) == [
        ("check_status", "succeeded"),
        ("reconcile", "refunded"),
    ]
    assert states(journal.events("RC-PLAIN")) == [
        ("check_status", "succeeded"),
        ("reconcile", "succeeded"),  # asked again inside the refund window: no change
    ]
    failed = journal.get("RC-FAIL")
    assert failed is not None
    assert (failed.code, failed.reference_no) == ("06", sim.transfers["RC-FAIL"].reference_no)
    journal.close()


async def test_reconcile_marks_a_sending_item_dokus_never_got_for_retry_and_resume_pays_it(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "run.db")
    lost = item("LOST")
    journal.plan([lost], source=PlanSource(1, "1" * 64, "lost.csv"))
    journal.mark_sending(lost, "1234567890")  # the process died before sending
    async with asyncio.timeout(TIMEOUT), real_time_client(sim) as doku:
        report = await reconcile(doku, journal)
        assert (report.not_found, report.changed) == (1, 1)
        entry = journal.get("LOST")
        assert entry is not None
        assert (entry.state, entry.code) == ("retry", "07")
        assert "nothing was paid" in entry.message
        runner = BulkRunner(doku, customer_number=CUSTOMER, journal=journal)
        summary = await runner.run([e.item for e in journal.entries()])
    assert summary.counts["succeeded"] == 1
    assert sim.transfer_count("LOST") == 1
    assert states(journal.events("LOST")) == [("reconcile", "retry"), ("check_status", "succeeded")]
    journal.close()


async def test_resume_records_its_settlement_as_resume(sim: DokuSimulator, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "run.db")
    it = item("RS-1", *UNPAID_THEN_FAILED)
    async with asyncio.timeout(TIMEOUT), real_time_client(sim) as doku:
        await BulkRunner(doku, customer_number=CUSTOMER, journal=journal).run([it])
        await wait_until(lambda: sim.transfers["RS-1"].status == "06")
        summary = await BulkRunner(doku, customer_number=CUSTOMER, journal=journal).run([it])
    assert summary.counts["failed"] == 1
    assert states(journal.events("RS-1")) == [("check_status", "pending"), ("resume", "failed")]
    assert sim.transfer_count("RS-1") == 1
    journal.close()


# ----------------------------------------------------------------------------- the CLI


async def test_cli_run_then_reconcile_tells_the_truth_about_the_money(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    items = [
        item("CLI-OK-1"),
        item("CLI-FAIL", *UNPAID_THEN_FAILED),
        item("CLI-REFUND", *REFUNDED),
        item("CLI-OK-2", "008", "1234098765"),
    ]
    csv_path = write_items(tmp_path / "p.csv", items)
    db = tmp_path / "run.db"
    env = sim_env(sim, tmp_path)
    run = await cli("payouts", "run", str(csv_path), "--journal", str(db), env=env, cwd=tmp_path)
    assert run.returncode == 3, run  # one payout pending: not settled
    assert f"journal {db}: 4 items - succeeded 3 (IDR 450,000.00), pending 1" in run.stdout
    assert "  CLI-FAIL  pending  03" in run.stdout
    assert f"next: run 'doku-async payouts reconcile {db}' to follow 1 payout(s)" in run.stdout

    await wait_until(lambda: sim.transfers["CLI-FAIL"].status == "06")
    await wait_until(lambda: sim.transfers["CLI-REFUND"].status == "04")
    rec = await cli("payouts", "reconcile", str(db), "--rate", "50", env=env, cwd=tmp_path)
    assert rec.returncode == 1, rec  # one failed, one refunded
    assert "  CLI-FAIL: pending -> failed  06" in rec.stdout
    assert "  CLI-REFUND: succeeded -> refunded  04" in rec.stdout
    assert "reconcile: asked about 4 payout(s): 2 changed, 0 not found" in rec.stdout
    assert "succeeded 2 (IDR 300,000.00), failed 1 (IDR 150,000.00), refunded 1" in rec.stdout
    assert "2 payout(s) failed or were refunded" in rec.stdout

    # Resume: nothing to pay, but the whole file's totals and exit code stay truthful.
    resumed = await cli("payouts", "resume", str(db), env=env, cwd=tmp_path)
    assert resumed.returncode == 1, resumed
    assert "skipped 4" in resumed.stdout
    assert "failed 1 (IDR 150,000.00), refunded 1" in resumed.stdout
    assert sum(sim.transfer_count(it.reference) for it in items) == 4

    status = await cli(
        "payouts", "status", "CLI-REFUND", "--journal", str(db), env=env, cwd=tmp_path
    )
    assert status.returncode == 1, status
    lines = status.stdout.splitlines()
    assert lines[0].startswith("journal: refunded code=04")
    assert "events (oldest first):" in lines
    events = [line.split() for line in lines if line.startswith("  ")]
    assert [e[1:4] for e in events] == [
        ["check_status", "succeeded", "00"],
        ["reconcile", "refunded", "04"],
    ]
    assert lines[-1].startswith("DOKU: 04 (")


async def test_cli_lists_at_most_20_open_payouts_and_points_to_the_rest(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    items = [item(f"MANY-{i:02d}", "002", f"9{i:03d}12345") for i in range(23)]
    csv_path = write_items(tmp_path / "p.csv", items)
    db, out = tmp_path / "run.db", tmp_path / "out.csv"
    env = sim_env(sim, tmp_path)
    run = await cli(
        "payouts", "run", str(csv_path), "--journal", str(db), "--out", str(out),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 3, run
    assert "not confirmed paid (23):" in run.stdout
    assert sum(line.startswith("  MANY-") for line in run.stdout.splitlines()) == 20
    assert f"  and 3 more, see {out}" in run.stdout
    await wait_until(lambda: all(sim.transfers[it.reference].status == "06" for it in items))
    rec = await cli("payouts", "reconcile", str(db), env=env, cwd=tmp_path)
    assert rec.returncode == 1, rec
    assert "  and 3 more changed" in rec.stdout
    assert f"  and 3 more, see 'doku-async journal export {db}'" in rec.stdout


async def test_cli_reconcile_of_a_settled_journal_asks_nothing_and_exits_0(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    csv_path = write_items(tmp_path / "p.csv", [item("DONE-1"), item("DONE-2")])
    db = tmp_path / "run.db"
    env = sim_env(sim, tmp_path)
    run = await cli("payouts", "run", str(csv_path), "--journal", str(db), env=env, cwd=tmp_path)
    assert run.returncode == 0, run
    assert "every payout is confirmed paid by DOKU" in run.stdout
    asked = len(sim.requests_for("check_status"))
    rec = await cli("payouts", "reconcile", str(db), "--refund-window", "0", env=env, cwd=tmp_path)
    assert rec.returncode == 0, rec
    assert len(sim.requests_for("check_status")) == asked
    missing = await cli("payouts", "reconcile", str(tmp_path / "nope.db"), env=env, cwd=tmp_path)
    assert missing.returncode == 5, missing
    assert not (tmp_path / "nope.db").exists()


def test_a_release_from_a_finalizer_inside_the_lock_bookkeeping_does_not_deadlock(
    tmp_path: Path,
) -> None:
    """A journal that was never closed is released by its finalizer whenever the garbage
    collector runs, which can be while the same thread is inside the lock table's guard (taking
    another journal's lock): the release is deferred to the guard's exit, not waited for."""
    from doku_async.bulk import _lock

    first = _lock.JournalLock(str(tmp_path / "a.db"))
    first.acquire()
    key = os.path.realpath(first.path)
    done = threading.Event()

    def bookkeeping_interrupted_by_a_finalizer() -> None:
        with _lock._guarded():
            first.release()  # what the finalizer does, from inside the guard
            assert key in _lock._HELD  # deferred: the guard is still held
        done.set()

    worker = threading.Thread(target=bookkeeping_interrupted_by_a_finalizer, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert done.is_set(), "deadlocked: a release from inside the guard waited for the guard"
    assert key not in _lock._HELD
    second = _lock.JournalLock(str(tmp_path / "a.db"))
    second.acquire()  # the OS lock was given back
    second.release()
