"""7. The journal's cost: one runner on SQLite vs one and four runners on PostgreSQL (issue 16).

Every side pays the same generated items through ``BulkRunner(concurrency=32)`` against the
minimal loopback server (3 requests per item: inquiry, transfer, the check status that confirms
it). Sides, each once per round, the order rotating:

* no journal (the baseline of the journal's cost);
* one runner, SQLite journal (``Journal`` in a temporary folder; durable commits);
* one runner, PostgreSQL journal, as ``payouts run`` does it: the file planned once, items
  claimed in batches with leases (``run_shared``);
* four runners, one PostgreSQL run: four spawned OS processes (each its own client and
  journal connections) claiming from the same run; timed from a common start signal to the
  last one's end, client CPU summed over the four.

Reported: items per second (wall) and client CPU per item (``process_time`` of the runner
processes, the journal's own thread included; the database server's CPU is not in it), and the
journal's cost per item (CPU per item with the journal less without). PostgreSQL is the
machine's (``DOKU_TEST_POSTGRES_DSN``, default ``postgresql://postgres@127.0.0.1:5432/test``),
in a schema of this benchmark's own, dropped at the end. Without a server this benchmark
reports that it could not run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from doku_async.bulk import BulkRunner, Journal, PlanSource, PostgresJournal, run_shared

from ._common import CUSTOMER_NUMBER, Paired, Row, Sample, Settings, measured
from ._result import Result
from ._server import ServerProcess
from .bulk import make_items, new_client

NAME = "journal"
TITLE = "The journal's cost: SQLite vs PostgreSQL, one and four runners"
CONCURRENCY = 32
RUNNERS = 4
SIDES = ("none", "sqlite", "pg1", "pg4")
LABELS = {
    "none": "no journal",
    "sqlite": "1 runner, SQLite journal",
    "pg1": "1 runner, PostgreSQL journal",
    "pg4": f"{RUNNERS} runners (processes), one PostgreSQL run",
}
DSN = os.environ.get("DOKU_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _with_schema(schema: str) -> str:
    joiner = "&" if "?" in DSN else "?"
    return f"{DSN}{joiner}search_path={schema}"


async def _execute(sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _plain(server_url: str, items: list[Any], journal: Any) -> Sample:
    async with new_client(server_url) as client:
        await client.kirim.check_status(original_partner_reference_no="WARM-1")  # token
        runner = BulkRunner(
            client, customer_number=CUSTOMER_NUMBER, concurrency=CONCURRENCY, journal=journal
        )
        with measured() as m:
            summary = await runner.run(items)
    errors = summary.done - summary.counts["succeeded"]
    return Sample(summary.done, m[0], m[1], errors=errors)


async def _shared(server_url: str, journal: PostgresJournal) -> tuple[int, int]:
    async with new_client(server_url) as client:
        runner = BulkRunner(
            client, customer_number=CUSTOMER_NUMBER, concurrency=CONCURRENCY, journal=journal
        )
        summary = await run_shared(runner, journal)
    return summary.done, summary.done - summary.counts["succeeded"]


def _pg_one(server_url: str, url: str, items: list[Any], run_id: str) -> Sample:
    journal = PostgresJournal(url, run_id=run_id)
    try:
        journal.plan(items, source=PlanSource(len(items), run_id))
        with measured() as m:
            done, errors = asyncio.run(_shared(server_url, journal))
    finally:
        journal.close()
    return Sample(done, m[0], m[1], errors=errors)


def _child(conn: Any, server_url: str, url: str, run_id: str) -> None:
    """One of the four runners: ready, wait for the start, run, report (done, errors, cpu)."""
    journal = PostgresJournal(url, run_id=run_id)
    try:
        conn.send("ready")
        conn.recv()
        cpu = time.process_time()
        done, errors = asyncio.run(_shared(server_url, journal))
        conn.send((done, errors, time.process_time() - cpu))
    finally:
        journal.close()
        conn.close()


def _pg_four(server_url: str, url: str, items: list[Any], run_id: str) -> Sample:
    planner = PostgresJournal(url, run_id=run_id)
    try:
        planner.plan(items, source=PlanSource(len(items), run_id))
    finally:
        planner.close()
    ctx = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    try:
        for _ in range(RUNNERS):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child, args=(child, server_url, url, run_id), daemon=True)
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        for pipe in pipes:
            if not pipe.poll(60) or pipe.recv() != "ready":
                raise RuntimeError("a runner process did not start")
        started = time.perf_counter()
        for pipe in pipes:
            pipe.send("go")
        reports = [pipe.recv() if pipe.poll(120) else (0, 1, 0.0) for pipe in pipes]
        wall = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    done = sum(r[0] for r in reports)
    errors = sum(r[1] for r in reports) + abs(done - len(items))
    return Sample(done, wall, sum(r[2] for r in reports), errors=errors)


def _one_side(side: str, server_url: str, url: str, n: int, folder: Path) -> Sample:
    run_id = f"{side}-{uuid.uuid4().hex[:8]}"
    items = make_items(n, prefix=run_id)
    if side == "none":
        return asyncio.run(_plain(server_url, items, None))
    if side == "sqlite":
        journal = Journal(folder / f"{run_id}.db")
        try:
            return asyncio.run(_plain(server_url, items, journal))
        finally:
            journal.close()
    if side == "pg1":
        return _pg_one(server_url, url, items, run_id)
    return _pg_four(server_url, url, items, run_id)


def run(settings: Settings) -> Result:
    result = Result(NAME, TITLE)
    started = time.perf_counter()
    schema = f"doku_bench_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_execute(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        result.error = f"no PostgreSQL at {DSN} ({type(exc).__name__}); set DOKU_TEST_POSTGRES_DSN"
        return result
    url = _with_schema(schema)
    n = settings.scale(3000, 1000)
    samples: dict[str, list[Sample]] = {side: [] for side in SIDES}
    try:
        with ServerProcess("minimal") as server, tempfile.TemporaryDirectory() as tmp:
            _one_side("pg1", server.url, url, 200, Path(tmp))  # warm-up (migrations, imports)
            for round_no in range(settings.rounds):
                shift = round_no % len(SIDES)
                for side in SIDES[shift:] + SIDES[:shift]:
                    samples[side].append(_one_side(side, server.url, url, n, Path(tmp)))
    finally:
        asyncio.run(_execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    result.rows.extend(_rows(samples, n))
    result.data = {side: Paired(samples[side], samples["none"]).to_json() for side in SIDES} | {
        "items_per_run": n,
        "concurrency": CONCURRENCY,
    }
    result.notes.append(
        "7: client CPU excludes the PostgreSQL server's; the four-runner side sums its four "
        "processes' CPU and times from a common start to the last one's end."
    )
    result.seconds = time.perf_counter() - started
    return result


def _rows(samples: dict[str, list[Sample]], n: int) -> list[Row]:
    rows: list[Row] = []
    for side in SIDES:
        paired = Paired(samples[side], samples["none"])
        rate = paired.stat("sdk", "rate")
        cpu = paired.stat("sdk", "cpu_us")
        base_cpu = paired.stat("base", "cpu_us")
        note = f"{paired.errors()} errors" if paired.errors() else ""
        label = f"{LABELS[side]}, {n:,} items, concurrency {CONCURRENCY}"
        rows.append(Row("7", f"items/s, {label}", rate.fmt(), note=note))
        rows.append(Row("7", f"client CPU µs/item, {label}", cpu.fmt(1)))
        if side != "none":
            rows.append(
                Row(
                    "7",
                    f"journal cost, client CPU µs/item, {LABELS[side]}",
                    f"{cpu.median - base_cpu.median:,.1f}",
                )
            )
    return rows
