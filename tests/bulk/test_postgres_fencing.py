"""Review of the PostgreSQL journal (issue 16): the lease fences every write that could send
money or move a state back, a deadlock is retried instead of failing the run, concurrent
migrations and first plans are safe, and a password given as a URL parameter is never shown."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from helpers import numbered_items
from postgres import fresh_schema

from doku_async.bulk import (
    JournalDatabaseError,
    LeaseLostError,
    PlanSource,
    PostgresJournal,
)
from doku_async.bulk._models import PayoutItem
from doku_async.bulk._pgconn import redact_url


def expire_leases(journal: PostgresJournal) -> None:
    """Every lease of ``journal``'s run runs out now (in the database's clock)."""
    journal._read(
        lambda c: c.execute(
            "UPDATE doku_items SET lease_until = clock_timestamp() - interval '1 second' "
            "WHERE run_id=$1 AND owner IS NOT NULL",
            journal.run_id,
        )
    )


def two_runners(pg_url: str, run_id: str, batch: list[PayoutItem]) -> list[PostgresJournal]:
    a = PostgresJournal(pg_url, run_id=run_id, owner="runner-a")
    b = PostgresJournal(pg_url, run_id=run_id, owner="runner-b")
    a.plan(batch, source=PlanSource(len(batch), run_id[:1] * 64))
    return [a, b]


async def test_a_runner_that_lost_its_lease_never_marks_after_the_new_holder_let_go(
    pg_url: str,
) -> None:
    """a claims, its lease runs out, b takes the item over, pays it and records ``accepted``
    (letting go of the lease). a, still working on its claim, must not mark (and so send)
    the item again: the mark of a claimed item needs the lease, not just a free row."""
    batch = numbered_items(1, "GONE")
    a, b = two_runners(pg_url, "gone", batch)
    try:
        assert len((await a.claim(10))[0]) == 1
        expire_leases(a)
        assert len((await b.claim(10))[0]) == 1
        await b.mark_sending_grouped(batch[0], "B-1")
        b.record_soon(batch[0], "accepted", code="2004300", reference_no="R-B")
        b.flush()
        with pytest.raises(LeaseLostError):
            await a.mark_sending_grouped(batch[0], "A-1")
        entry = b.get(batch[0].reference)
        assert entry is not None
        assert (entry.state, entry.external_id) == ("accepted", "B-1")
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("late", ["retry", "failed", "unknown"])
async def test_a_late_outcome_of_a_runner_that_lost_its_lease_moves_nothing(
    pg_url: str, late: str
) -> None:
    """a marked the item and lost its lease; b took it over and sent its own transfer (its
    ``sending`` mark). a's late outcome (about a's attempt) must not replace b's mark: a
    ``retry`` or ``failed`` there would let the item be paid again without check status, or
    call a transfer in flight failed. The news is kept as an event."""
    batch = numbered_items(1, f"LATE{late}")
    a, b = two_runners(pg_url, f"late-{late}", batch)
    try:
        await a.claim(10)
        await a.mark_sending_grouped(batch[0], "A-1")
        expire_leases(a)
        assert len((await b.claim(10))[0]) == 1
        await b.mark_sending_grouped(batch[0], "B-1")
        a.record_soon(batch[0], late, message="a's own attempt")
        a.flush()
        entry = b.get(batch[0].reference)
        assert entry is not None
        assert (entry.state, entry.external_id) == ("sending", "B-1")
        assert late in [e.state for e in b.events(batch[0].reference)]
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("late", ["retry", "failed"])
async def test_a_late_outcome_never_replaces_a_later_one(pg_url: str, late: str) -> None:
    """b paid the item (``accepted``) and let go of it; a's late outcome of its own attempt
    must not replace it: a ``retry`` would make the next resume pay it again without check
    status, a ``failed`` (a's inquiry refused, say) would call b's accepted transfer failed,
    for good (a final state)."""
    batch = numbered_items(1, f"AFTER{late}")
    a, b = two_runners(pg_url, f"after-{late}", batch)
    try:
        await a.claim(10)
        expire_leases(a)
        await b.claim(10)
        await b.mark_sending_grouped(batch[0], "B-1")
        b.record_soon(batch[0], "accepted", code="2004300")
        b.flush()
        a.record_soon(batch[0], late, message="a's own attempt was refused")
        a.flush()
        entry = b.get(batch[0].reference)
        assert entry is not None
        assert entry.state == "accepted"
    finally:
        a.close()
        b.close()


async def test_reconcile_does_not_make_an_item_in_flight_retryable(pg_url: str) -> None:
    """A reconcile from another machine finds nothing at DOKU (07) for an item a live runner
    has just marked (its transfer is on its way): the item must stay ``sending``, or a take-over
    would send it again without check status."""
    batch = numbered_items(1, "FLIGHT")
    a, other = two_runners(pg_url, "flight", batch)
    try:
        await a.claim(10)
        await a.mark_sending_grouped(batch[0], "A-1")
        assert not other.apply(batch[0].reference, "retry", source="reconcile", code="07")
        entry = other.get(batch[0].reference)
        assert entry is not None
        assert entry.state == "sending"
    finally:
        a.close()
        other.close()


async def test_a_deadlock_in_the_group_commit_is_retried(pg_url: str) -> None:
    """Another transaction (as this runner's own heartbeat, on another connection) holds one
    row of a group commit and waits for another: PostgreSQL breaks the deadlock by aborting
    one of them. If it is the group commit, it must be retried (it was rolled back whole), not
    fail the journal and stop the run."""
    import asyncpg  # type: ignore[import-untyped]

    batch = numbered_items(2, "LOCK")
    journal = PostgresJournal(pg_url, run_id="deadlock", owner="runner-a")
    try:
        journal.plan(batch, source=PlanSource(2, "9" * 64))
        other = await asyncpg.connect(pg_url)
        try:
            try:
                await other.execute("SET deadlock_timeout = '20s'")
            except asyncpg.InsufficientPrivilegeError:
                pytest.skip("setting deadlock_timeout needs a superuser on the test server")
            tx = other.transaction()
            await tx.start()
            await other.execute(
                "SELECT 1 FROM doku_items WHERE run_id='deadlock' AND reference=$1 FOR UPDATE",
                batch[1].reference,
            )
            for item in batch:  # one batch: locks batch[0], then waits for batch[1]
                journal.record_soon(item, "retry")
            waiting = journal._db  # the group commit runs on the journal's own thread
            await asyncio.sleep(0.3)
            assert waiting.failed is None
            # Now the other transaction waits for batch[0]: a deadlock, which the group
            # commit's backend detects first (the other side checks only after 20 s).
            await other.execute(
                "UPDATE doku_items SET updated=updated WHERE run_id='deadlock' AND reference=$1",
                batch[0].reference,
            )
            await tx.rollback()
        finally:
            await other.close()
        await asyncio.to_thread(journal.flush)
        assert journal.counts() == {"retry": 2}
    finally:
        journal.close()


def test_runners_migrating_and_planning_at_once() -> None:
    """Four runners open a fresh schema and plan the same file at the same moment: the schema
    is migrated once, the plan recorded once, nobody fails."""
    batch = numbered_items(30, "RACE")
    source = PlanSource(30, "7" * 64, "race.csv")
    with fresh_schema("doku_race") as url:
        start = threading.Barrier(4)
        results: list[Any] = []

        def runner(n: int) -> None:
            try:
                start.wait(10)
                journal = PostgresJournal(url, run_id="race", owner=f"r{n}")
                try:
                    results.append(journal.plan(batch, source=source))
                finally:
                    journal.close()
            except Exception as exc:
                results.append(exc)

        threads = [threading.Thread(target=runner, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(results, key=str) == [0, 0, 0, 30], results
        reader = PostgresJournal(url, run_id="race")
        try:
            versions = reader._read(lambda c: c.fetch("SELECT version FROM doku_schema"))
            assert [int(v[0]) for v in versions] == [1]  # migrated once
            assert reader.counts() == {"planned": 30}
        finally:
            reader.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://doku@127.0.0.1:1/none?password=s3cr3t-pw-do-not-leak",
        "postgresql://doku@127.0.0.1:1/none?sslmode=disable&PassWord=s3cr3t-pw-do-not-leak",
        "postgresql://doku@127.0.0.1:1/none?sslpassword=s3cr3t-pw-do-not-leak",
        "postgresql://doku@127.0.0.1:1/none?pass%77ord=s3cr3t-pw-do-not-leak",
    ],
)
def test_a_password_given_as_a_parameter_is_never_shown(url: str) -> None:
    secret = "s3cr3t-pw-do-not-leak"
    assert secret not in redact_url(url)
    with pytest.raises(JournalDatabaseError) as caught:
        PostgresJournal(url, retry_for=0.2)
    assert secret not in str(caught.value)


async def test_a_nul_in_dokus_message_does_not_stop_the_journal(pg_url: str) -> None:
    """DOKU's ``responseMessage`` (or a code, or a ``referenceNo``) is text from outside; one
    NUL character in it (which PostgreSQL's text cannot hold) failed the whole group commit,
    so the journal, every runner's marks in that batch, and the run."""
    batch = numbered_items(2, "NUL")
    journal = PostgresJournal(pg_url, run_id="nul", owner="runner-a")
    try:
        journal.plan(batch, source=PlanSource(2, "8" * 64))
        await journal.claim(10)
        await journal.mark_sending_grouped(batch[0], "E-1")
        journal.record_soon(
            batch[0], "failed", code="40\x0003", message="Bad\x00Request", reference_no="R\x001"
        )
        await journal.mark_sending_grouped(batch[1], "E-2")  # same batch: must commit
        assert not journal.apply(batch[0].reference, "unknown", source="reconcile", code="\x00")
        entry = journal.get(batch[0].reference)
        assert entry is not None
        assert entry.state == "failed"
        assert entry.message == "Bad\ufffdRequest"
        assert journal.counts() == {"failed": 1, "sending": 1}
    finally:
        journal.close()


async def test_a_claim_whose_answer_was_lost_is_not_lost(pg_url: str) -> None:
    """The claim commits, then the connection drops before its rows come back; the retry must
    hand over the items the lost answer claimed (they are this runner's, under a lease its
    heartbeat renews: nobody else may take them, and this runner never worked on them)."""
    import asyncpg

    batch = numbered_items(3, "LOSTCLAIM")
    journal = PostgresJournal(pg_url, run_id="lostclaim", owner="runner-a")
    db = journal._db
    original = db.with_conn
    dropped: list[bool] = []

    def answer_lost(fn: Any) -> Any:
        run = original(fn)

        async def once() -> Any:
            result = await run()
            if not dropped:
                dropped.append(True)  # committed, but the answer never arrives
                raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
            return result

        return once

    try:
        journal.plan(batch, source=PlanSource(3, "4" * 64))
        db.with_conn = answer_lost  # type: ignore[method-assign]
        claimed, _ = await journal.claim(10)
        db.with_conn = original  # type: ignore[method-assign]
        assert dropped == [True]
        assert sorted(i.reference for i in claimed) == [i.reference for i in batch]
    finally:
        journal.close()


async def test_a_group_commit_whose_answer_was_lost_is_retried_once_in_effect(
    pg_url: str,
) -> None:
    """The group commit commits, then its connection drops before the answer: the retried
    batch confirms the sending mark (the transfer may go out: its mark is committed) and
    records each outcome and event once."""
    import asyncpg

    batch = numbered_items(2, "ACK")
    journal = PostgresJournal(pg_url, run_id="ack", owner="runner-a")
    db = journal._db
    original = db._commit
    dropped: list[bool] = []

    async def answer_lost(writes: Any) -> Any:
        result = await original(writes)
        if not dropped:
            dropped.append(True)
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
        return result

    try:
        journal.plan(batch, source=PlanSource(2, "3" * 64))
        await journal.claim(10)
        await journal.mark_sending_grouped(batch[0], "E-0")
        db._commit = answer_lost  # type: ignore[method-assign,assignment]
        journal.record_soon(batch[0], "accepted", code="2004300")
        await journal.mark_sending_grouped(batch[1], "E-1")  # same batch as the outcome
        assert dropped == [True]
        assert journal.counts() == {"accepted": 1, "sending": 1}
        assert [e.state for e in journal.events(batch[0].reference)] == ["accepted"]
    finally:
        journal.close()


def test_a_database_url_is_recognised_whatever_the_case_of_its_scheme(tmp_path: Any) -> None:
    """asyncpg (urllib) reads the scheme case-insensitively: ``PostgreSQL://...`` is a database.
    Read as a SQLite path, a runner would journal to a local file (each machine paying the
    whole file on its own journal) and print the URL's password in its errors."""
    from doku_async.bulk._storage import is_database_url

    assert is_database_url("PostgreSQL://u:pw@127.0.0.1:1/x")
    assert is_database_url("POSTGRES://u@127.0.0.1:1/x")
    assert not is_database_url(str(tmp_path / "postgresql-run.db"))


def test_the_journal_commits_durably_even_where_the_default_is_not(pg_url: str) -> None:
    """With ``synchronous_commit = off`` (a database's or role's default, here set through the
    URL so the shared server is left alone), PostgreSQL acknowledges a commit before it is on
    disk: a crash of the server after the acknowledgement loses a sending mark whose transfer
    went out. The journal's own connections commit durably (the SQLite journal's
    ``synchronous=FULL``)."""
    url = pg_url + "&synchronous_commit=off"
    journal = PostgresJournal(url, run_id="durable")
    try:
        for _ in range(3):  # on every connection, after the pool's RESET ALL too
            assert journal._read(lambda c: c.fetchval("SHOW synchronous_commit")) == "on"
    finally:
        journal.close()


@pytest.mark.parametrize("setting", ["statement_timeout", "lock_timeout"])
async def test_a_timeout_on_a_held_row_pauses_the_journal(pg_url: str, setting: str) -> None:
    """A database that cancels statements waiting too long (``statement_timeout`` or
    ``lock_timeout``, here 200 ms through the URL) while another transaction holds a row of a
    group commit for longer: the commit is retried until the row is free (the runners pause),
    not turned into a failed journal and a stopped run."""
    import asyncpg

    batch = numbered_items(2, f"TIMEOUT{setting[:4]}")
    journal = PostgresJournal(pg_url + f"&{setting}=200", run_id=f"timeout-{setting}")
    try:
        journal.plan(batch, source=PlanSource(2, "2" * 64))
        await journal.claim(10)
        other = await asyncpg.connect(pg_url)
        try:
            async with other.transaction():
                await other.execute(
                    "SELECT 1 FROM doku_items WHERE run_id=$1 AND reference=$2 FOR UPDATE",
                    journal.run_id,
                    batch[0].reference,
                )
                journal.record_soon(batch[0], "retry")
                mark = asyncio.create_task(journal.mark_sending_grouped(batch[1], "E-1"))
                await asyncio.sleep(0.8)  # several timeouts while the row is held
                assert not mark.done()
            await asyncio.wait_for(mark, 30)
        finally:
            await other.close()
        assert journal.counts() == {"retry": 1, "sending": 1}
    finally:
        journal.close()


async def test_two_runs_never_touch_each_others_items(pg_url: str) -> None:
    """Two runs of one database, with the same references and the same runner id (one run id
    an injection attempt): claims, marks, outcomes, the heartbeat and closing each stay in
    their run."""
    evil = "x'); DROP TABLE doku_items; --"
    batch = numbered_items(2, "ISO")
    one = PostgresJournal(pg_url, run_id="iso", owner="same-runner")
    two = PostgresJournal(pg_url, run_id=evil, owner="same-runner")
    try:
        one.plan(batch, source=PlanSource(2, "1" * 64))
        two.plan(batch, source=PlanSource(2, "1" * 64))
        assert len((await one.claim(10))[0]) == 2
        await one.mark_sending_grouped(batch[0], "E-1")
        one.record_soon(batch[1], "failed", code="4044311")
        assert await one.heartbeat() == 1
        assert await two.heartbeat() == 0
        assert two.counts() == {"planned": 2}
        assert len((await two.claim(10))[0]) == 2  # nothing of run one's leases here
        one.close()
        assert await two.heartbeat() == 2  # closing run one let go of nothing of run two
        again = PostgresJournal(pg_url, run_id="iso", owner="other")
        try:
            assert again.counts() == {"sending": 1, "failed": 1}
        finally:
            again.close()
    finally:
        one.close()
        two.close()
