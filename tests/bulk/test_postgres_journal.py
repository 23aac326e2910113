"""The bulk journal on PostgreSQL (issue 16): the storage protocol, the schema and its
migrations, plans per run id, the state rule in SQL, leases and their fencing, the runner over
a ``postgresql://`` URL, a dropped connection mid-run, and the password never shown."""

from __future__ import annotations

import asyncio
import itertools
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import client_for, numbered_items
from postgres import terminate_connections

from doku_async.bulk import (
    BulkRunner,
    Journal,
    JournalBackend,
    JournalDatabaseError,
    JournalStorage,
    LeaseLostError,
    PlanMismatchError,
    PlanSource,
    PostgresJournal,
    migrate_url,
    run_shared,
)
from doku_async.bulk._pgconn import redact_url
from doku_async.bulk._schema import runner_moves
from doku_async.testing import DokuSimulator

CUSTOMER = "628115678890"
STATES = ["planned", "retry", "sending", "unknown", "accepted", "pending", "succeeded", "failed"]
STATES += ["refunded"]


def schema_of(url: str) -> str:
    return url.split("search_path=")[1].split("&")[0]


def test_both_journals_provide_the_protocol(pg_url: str, tmp_path: Path) -> None:
    sqlite = Journal(tmp_path / "run.db")
    shared = PostgresJournal(pg_url, run_id="protocol")
    try:
        for journal in (sqlite, shared):
            assert isinstance(journal, JournalStorage)
            assert isinstance(journal, JournalBackend)
    finally:
        sqlite.close()
        shared.close()


def test_migrations_apply_once(pg_url: str) -> None:
    schema = schema_of(pg_url)
    url = pg_url.replace(schema, schema + "_m")

    async def create(sql: str) -> None:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(create(f"CREATE SCHEMA {schema}_m"))
    try:
        assert migrate_url(url) == (0, 1)
        assert migrate_url(url) == (1, 1)
    finally:
        asyncio.run(create(f"DROP SCHEMA {schema}_m CASCADE"))


def test_the_sql_state_rule_is_the_runners(pg_url: str) -> None:
    """``doku_moves`` in SQL agrees with ``runner_moves`` for every pair of states."""
    journal = PostgresJournal(pg_url, run_id="moves")
    try:
        pairs = list(itertools.product([*STATES, None], STATES))

        async def ask(conn: object) -> list[bool]:
            return [
                bool(await conn.fetchval("SELECT doku_moves($1, $2)", a, b))  # type: ignore[attr-defined]
                for a, b in pairs
            ]

        got = journal._read(ask)
        assert got == [runner_moves(a, b) for a, b in pairs]
        assert any(got)
        assert not all(got)
    finally:
        journal.close()


def test_plan_once_per_run_id(pg_url: str) -> None:
    batch = numbered_items(5, "PLAN")
    source = PlanSource(5, "a" * 64, "payouts.csv")
    first = PostgresJournal(pg_url, run_id="plan-a")
    second = PostgresJournal(pg_url, run_id="plan-b")
    try:
        assert first.plan(batch, source=source) == 5
        assert first.plan(batch, source=source) == 0  # the same file again: a no-op
        with pytest.raises(PlanMismatchError, match="another file"):
            first.plan(batch[:4], source=PlanSource(4, "b" * 64, "other.csv"))
        assert first.check_plan_complete().rows == 5
        assert second.counts() == {}  # another run in the same database
        assert second.plan(batch, source=PlanSource(5, "b" * 64, "other.csv")) == 5
        assert first.counts() == {"planned": 5}
        assert first.totals()["planned"] == (5, sum((i.amount for i in batch), Decimal(0)))
    finally:
        first.close()
        second.close()


async def test_a_claimed_item_is_not_sent_by_another_runner(pg_url: str) -> None:
    """The sending mark is fenced by the lease: a runner that does not hold the item cannot
    mark it (so never sends it); once the holder's lease expired, another takes it over."""
    batch = numbered_items(3, "LEASE")
    a = PostgresJournal(pg_url, run_id="lease", lease=0.5, owner="runner-a")
    b = PostgresJournal(pg_url, run_id="lease", lease=0.5, owner="runner-b")
    try:
        a.plan(batch, source=PlanSource(3, "c" * 64))
        claimed, _ = await a.claim(10)
        assert [i.reference for i in claimed] == [i.reference for i in batch]
        assert (await b.claim(10))[0] == []  # SKIP LOCKED / leased: nothing for b
        with pytest.raises(LeaseLostError):
            await b.mark_sending_grouped(batch[0], "1001")
        await a.mark_sending_grouped(batch[0], "1002")
        await asyncio.sleep(0.7)  # a's lease runs out (no heartbeat)
        taken, _ = await b.claim(10)
        assert {i.reference for i in taken} == {i.reference for i in batch}
        assert b.get(batch[0].reference).state == "sending"  # type: ignore[union-attr]
        with pytest.raises(LeaseLostError):
            await a.mark_sending_grouped(batch[1], "1003")
    finally:
        a.close()
        b.close()


async def test_runner_over_a_url_pays_once_and_records_events(
    pg_url: str, sim: DokuSimulator
) -> None:
    batch = numbered_items(40, "URL")
    async with client_for(sim) as doku:
        runner = BulkRunner(
            doku, customer_number=CUSTOMER, concurrency=8, journal=pg_url, run_id="url"
        )
        try:
            summary = await runner.run(batch)
        finally:
            runner.close()
    assert summary.counts["succeeded"] == 40
    reader = PostgresJournal(pg_url, run_id="url")
    try:
        assert reader.counts() == {"succeeded": 40}
        assert all(sim.transfer_count(i.reference) == 1 for i in batch)
        events = reader.events(batch[0].reference)
        assert [e.state for e in events][-1] == "succeeded"
        assert {e.source for e in events} <= {"answer", "check_status"}
    finally:
        reader.close()


async def test_shared_runs_survive_dropped_connections(pg_url: str, sim: DokuSimulator) -> None:
    """Every journal connection terminated, twice, during a run of two runners: they pause,
    reconnect and finish; every item paid once."""
    batch = numbered_items(120, "DROP")
    sim.inject("transfer_bank", "latency", delay=0.01, times=len(batch))
    journals = [PostgresJournal(pg_url, run_id="drop", owner=f"r{n}") for n in range(2)]
    journals[0].plan(batch, source=PlanSource(len(batch), "d" * 64))

    async def run(journal: PostgresJournal) -> int:
        async with client_for(sim) as doku:
            runner = BulkRunner(doku, customer_number=CUSTOMER, concurrency=6, journal=journal)
            summary = await run_shared(runner, journal)
            return summary.done

    async def kill_connections() -> int:
        killed = 0
        for _ in range(2):
            await asyncio.sleep(0.3)
            killed += await terminate_connections(pg_url, schema_of(pg_url))
        return killed

    try:
        done = await asyncio.gather(*(run(j) for j in journals), kill_connections())
        assert done[2] >= 2  # connections were really terminated
        assert done[0] + done[1] >= len(batch)
        counts = journals[0].counts()
        assert counts == {"succeeded": len(batch)}, counts
        assert all(sim.transfer_count(i.reference) == 1 for i in batch)
    finally:
        for journal in journals:
            journal.close()


def test_the_password_is_never_shown() -> None:
    secret = "s3cr3t-pw-do-not-leak"
    url = f"postgresql://doku:{secret}@127.0.0.1:1/none"
    with pytest.raises(JournalDatabaseError) as caught:
        PostgresJournal(url, retry_for=0.2)
    assert secret not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://u:pw@db:5433/x?sslmode=require",
            "postgresql://u:***@db:5433/x?sslmode=require",
        ),
        ("postgresql://u@db/x", "postgresql://u@db/x"),
        ("postgres://u:p%40ss@[::1]:5432/x", "postgres://u:***@[::1]:5432/x"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_the_heartbeat_keeps_a_lease(pg_url: str) -> None:
    batch = numbered_items(2, "BEAT")
    a = PostgresJournal(pg_url, run_id="beat", lease=0.6, owner="runner-a")
    b = PostgresJournal(pg_url, run_id="beat", lease=0.6, owner="runner-b")
    try:
        a.plan(batch, source=PlanSource(2, "f" * 64))
        assert len((await a.claim(10))[0]) == 2
        for _ in range(4):  # 0.8 s in all, past the lease: renewed every 0.2 s
            await asyncio.sleep(0.2)
            assert await a.heartbeat() == 2
        assert (await b.claim(10))[0] == []  # still a's
        assert await b.held_by_others() == 2
    finally:
        a.close()
        b.close()
    # a closed runner lets go of its items
    c = PostgresJournal(pg_url, run_id="beat", owner="runner-c")
    try:
        assert len((await c.claim(10))[0]) == 2
    finally:
        c.close()


async def test_an_item_left_sending_is_claimed_and_its_entry_says_so(pg_url: str) -> None:
    """A runner that stopped with an item marked ``sending`` lets go of it; the next runner
    claims it and reads ``sending`` (so the item flow settles it through check status before
    sending anything)."""
    batch = numbered_items(1, "LEFT")
    a = PostgresJournal(pg_url, run_id="left", owner="runner-a")
    a.plan(batch, source=PlanSource(1, "0" * 64))
    await a.mark_sending_grouped(batch[0], "2001", session_id="S1")
    a.close()
    b = PostgresJournal(pg_url, run_id="left", owner="runner-b")
    try:
        claimed, _ = await b.claim(10)
        assert [i.reference for i in claimed] == [batch[0].reference]
        entry = b.get(batch[0].reference)
        assert entry is not None
        assert (entry.state, entry.external_id, entry.session_id) == ("sending", "2001", "S1")
    finally:
        b.close()


def test_without_asyncpg_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(ImportError, match=r"doku-async\[postgres\]"):
        PostgresJournal("postgresql://u@127.0.0.1:1/x")
