"""The journal's group commit: one transaction per event-loop iteration, marks durable before
the transfer goes out, outcomes visible to every read, and a failed write stops the run."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import committed_states, fail_writes_of, real_time_client

from doku_async.bulk import BulkRunner, Journal, PayoutItem, payout_item
from doku_async.testing import DokuSimulator

CUSTOMER = "628115678890"
TIMEOUT = 30


def item(i: int, prefix: str = "GC") -> PayoutItem:
    return payout_item(
        reference=f"{prefix}-{i:05d}",
        bank_code="014",
        account_number="8377388292",
        account_name="FHILEA HERMANUS",
        amount=Decimal("150000"),
        line=i + 2,
    )


def traced(journal: Journal) -> list[str]:
    statements: list[str] = []
    journal._db.set_trace_callback(statements.append)
    return statements


async def test_marks_made_in_one_iteration_share_one_commit_and_are_durable_on_return(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path)
    statements = traced(journal)
    items = [item(i) for i in range(50)]
    await asyncio.gather(
        *(journal.mark_sending_grouped(it, f"EXT{i}") for i, it in enumerate(items))
    )
    assert statements.count("COMMIT") == 1
    assert sum(s.startswith("INSERT INTO items") for s in statements) == 50
    # Committed when the awaits return: another connection sees every mark.
    assert committed_states(path) == {it.reference: "sending" for it in items}
    journal.close()


async def test_outcomes_are_queued_then_seen_by_every_read_and_by_close(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path)
    first, second, third = item(1), item(2), item(3)
    await journal.mark_sending_grouped(first, "E1")
    await journal.mark_sending_grouped(second, "E2")
    journal.record_soon(first, "succeeded", code="00", reference_no="DK1")
    # Queued, not written yet: another process still reads "sending".
    assert committed_states(path)[first.reference] == "sending"
    # The journal's own reads commit the queue first.
    entry = journal.get(first.reference)
    assert entry is not None
    assert (entry.state, entry.reference_no, entry.external_id) == ("succeeded", "DK1", "E1")
    assert committed_states(path)[first.reference] == "succeeded"

    journal.record_soon(second, "failed", code="06", message="rejected")
    assert journal.counts() == {"succeeded": 1, "failed": 1}
    journal.record_soon(third, "retry")
    assert [e.item.reference for e in journal.entries()] == [
        first.reference,
        second.reference,
        third.reference,
    ]
    # A later mark and outcome of the same item keep their order across groups.
    await journal.mark_sending_grouped(third, "E3")
    journal.record_soon(third, "unknown", message="timed out")
    journal.close()  # commits what is still queued
    assert committed_states(path) == {
        first.reference: "succeeded",
        second.reference: "failed",
        third.reference: "unknown",
    }


async def test_the_queue_commits_on_the_next_loop_iteration_without_a_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path)
    journal.record_soon(item(1), "succeeded")
    assert committed_states(path) == {}
    await asyncio.sleep(0)  # one iteration: the group commit runs
    assert committed_states(path) == {item(1).reference: "succeeded"}
    journal.close()


async def test_a_failed_group_commit_fails_its_marks_writes_nothing_and_refuses_more(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path)
    fail_writes_of(path, "GC-00003")
    marks = [journal.mark_sending_grouped(item(i), f"E{i}") for i in range(6)]
    outcomes = await asyncio.gather(*marks, return_exceptions=True)
    assert all(isinstance(o, sqlite3.IntegrityError) for o in outcomes), outcomes
    assert committed_states(path) == {}  # the whole group rolled back: no mark without its send
    with pytest.raises(sqlite3.IntegrityError, match="disk says no"):
        journal.record_soon(item(9), "succeeded")
    with pytest.raises(sqlite3.IntegrityError):
        await journal.mark_sending_grouped(item(10), "E10")
    with pytest.raises(sqlite3.IntegrityError):
        journal.mark_sending(item(11), "E11")
    assert journal.counts() == {}  # reads still work
    journal.close()
    assert committed_states(path) == {}


async def test_writing_to_a_closed_journal_raises_at_once(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.close()
    journal.close()  # idempotent
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        await asyncio.wait_for(journal.mark_sending_grouped(item(1), "E1"), 5)
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        journal.record_soon(item(1), "succeeded")


def test_writes_queued_when_a_loop_stops_are_committed_by_the_next_loop(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path)
    loop = asyncio.new_event_loop()
    # The outcome is queued in the loop's last iteration: its group commit never runs there.
    loop.call_soon(lambda: journal.record_soon(item(1), "succeeded"))
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()
    assert committed_states(path) == {}

    async def later() -> None:
        await asyncio.wait_for(journal.mark_sending_grouped(item(2), "E2"), 5)

    asyncio.run(later())
    assert committed_states(path) == {item(1).reference: "succeeded", item(2).reference: "sending"}
    journal.close()


# ------------------------------------------------------------------- through the runner


async def test_runner_groups_its_writes_and_leaves_every_outcome_committed(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    path = tmp_path / "run.db"
    journal = Journal(path)
    statements = traced(journal)
    items = [item(i, "RUN") for i in range(200)]
    async with asyncio.timeout(TIMEOUT), real_time_client(sim) as doku:
        runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=32, journal=journal)
        summary = await runner.run(items)
    assert summary.counts["succeeded"] == 200
    # Committed when run() returns, before any close.
    assert committed_states(path) == {it.reference: "succeeded" for it in items}
    writes = sum(s.startswith("INSERT INTO items") for s in statements)
    commits = statements.count("COMMIT")
    assert writes == 400  # a mark and an outcome per item
    assert commits < writes / 2  # grouped: at least two writes per commit on average
    journal.close()


async def test_runner_stops_when_the_journal_cannot_be_written_and_never_sends_unmarked(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    path = tmp_path / "run.db"
    journal = Journal(path)
    items = [item(i, "BRK") for i in range(60)]
    fail_writes_of(path, "BRK-00030")
    async with asyncio.timeout(TIMEOUT), real_time_client(sim) as doku:
        runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=8, journal=journal)
        with pytest.raises(sqlite3.IntegrityError, match="disk says no"):
            await runner.run(items)
    await sim.drain()
    committed = committed_states(path)
    sent = {it.reference for it in items if sim.transfer_count(it.reference)}
    assert "BRK-00030" not in sent
    # Every transfer that went out had its mark committed first, and nothing after the
    # failure was sent: the run stopped well short of the end.
    assert sent <= set(committed)
    assert len(sent) < len(items) - 8
    for reference in sent:
        assert sim.transfer_count(reference) == 1


async def test_a_metrics_thread_reading_the_journal_during_a_run_breaks_nothing(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    """A thread calling counts() every half millisecond (say, a metrics exporter) while the
    runner's group commits run: the run completes, every transfer has its mark, nobody is
    paid twice, and the journal ends consistent."""
    import threading

    path = tmp_path / "run.db"
    journal = Journal(path)
    stop = threading.Event()
    seen: list[dict[str, int]] = []
    failures: list[BaseException] = []

    def metrics() -> None:
        while not stop.wait(0.0005):
            try:
                seen.append(journal.counts())
            except BaseException as exc:  # reported below, not lost in the thread
                failures.append(exc)

    thread = threading.Thread(target=metrics, daemon=True)
    thread.start()
    items = [item(i, "THR") for i in range(1000)]
    try:
        async with asyncio.timeout(TIMEOUT), real_time_client(sim) as doku:
            runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=32, journal=journal)
            summary = await runner.run(items)
    finally:
        stop.set()
        thread.join(10)
    assert failures == []
    assert len(seen) > 10  # the thread really read along
    assert summary.counts["succeeded"] == 1000
    assert committed_states(path) == {it.reference: "succeeded" for it in items}
    assert all(sim.transfer_count(it.reference) == 1 for it in items)
    journal.close()
