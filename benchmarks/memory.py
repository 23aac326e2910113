"""6. Memory: peak RSS of a 100,000-item streamed bulk run.

A fresh child process (spawn; pinned to the client core) builds a client, then runs
``BulkRunner(concurrency=64)`` over a generator of 100,000 items against the minimal server,
consuming and dropping each result. It reports its peak resident set before the run and after
it, and the run's wall time. A second run does the same with the SQLite journal on disk.

The peak is ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` is wrong in a spawned child on
Linux, where it starts at the parent's size (the high-water mark of the image replaced by
``exec`` is carried over), so it would report the runner's memory. ``ru_maxrss`` is kept in
the JSON for reference; on other systems it is the only number.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import resource
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from ._common import CLIENT_CPU, CUSTOMER_NUMBER, Deadline, Row, Settings, pin
from ._result import Result
from ._server import ServerProcess

NAME = "memory"
TITLE = "Peak RSS of a streamed bulk run"
TARGET_MB = 150.0
FULL_ITEMS = 100_000
CONCURRENCY = 64
RUN_SECONDS = 240.0


def _proc_status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _peak_mb() -> float:
    """This process's peak RSS. ``VmHWM`` where Linux has it: ``ru_maxrss`` of a spawned child
    also counts the parent's pages from before the ``exec`` (Linux carries the old image's
    high-water mark over), so it reports the benchmark runner's size, not the child's."""
    hwm = _proc_status_mb("VmHWM")
    return hwm if hwm is not None else _ru_maxrss_mb()


async def _stream(url: str, n: int, journal: str | None) -> dict[str, Any]:
    from doku_async.bulk import BulkRunner, PayoutItem, payout_item

    from .bulk import new_client

    deadline = Deadline(RUN_SECONDS)

    def items() -> Iterator[PayoutItem]:
        for i in range(n):
            if deadline.passed():
                return
            yield payout_item(
                reference=f"MEM-2024-10-{i:07d}",
                bank_code="014",
                account_number="8377388292",
                account_name="FHILEA HERMANUS",
                amount=Decimal("200000"),
                remark="October earnings",
            )

    counts: dict[str, int] = {}
    async with new_client(url) as client:
        await client.kirim.check_status(original_partner_reference_no="warm-up")
        before = _peak_mb()
        runner = BulkRunner(
            client, customer_number=CUSTOMER_NUMBER, concurrency=CONCURRENCY, journal=journal
        )
        started = time.perf_counter()
        async for result in runner.results(items()):
            counts[result.status] = counts.get(result.status, 0) + 1
        wall = time.perf_counter() - started
        if runner.journal is not None:
            runner.journal.close()
    return {"rss_before_mb": before, "wall": wall, "counts": counts}


def _child(
    conn: multiprocessing.connection.Connection, url: str, n: int, journal: str | None
) -> None:
    try:
        pinned = pin(CLIENT_CPU)
        out = asyncio.run(_stream(url, n, journal))
        out |= {"peak_rss_mb": _peak_mb(), "ru_maxrss_mb": _ru_maxrss_mb(), "pinned": pinned}
        conn.send(out)
    except BaseException as exc:
        conn.send({"error": repr(exc)})
        raise


def measure(url: str, n: int, journal: str | None) -> dict[str, Any]:
    """Run the streamed bulk in a fresh process; its peak RSS and timings."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_child, args=(child, url, n, journal), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(RUN_SECONDS + 60):
            return {"error": "timed out"}
        out: dict[str, Any] = parent.recv()
        return out
    except EOFError:
        return {"error": f"child exited with {process.exitcode}"}
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)
        parent.close()


def run(settings: Settings) -> Result:
    result = Result(NAME, TITLE)
    started = time.perf_counter()
    n = settings.scale(FULL_ITEMS, 5_000)
    with ServerProcess("minimal") as server, tempfile.TemporaryDirectory() as tmp:
        for label, journal in (("no journal", None), ("SQLite journal", os.path.join(tmp, "j.db"))):
            out = measure(server.url, n, journal)
            if journal is not None and os.path.exists(journal):
                out["journal_mb"] = os.path.getsize(journal) / 2**20
                with contextlib.suppress(OSError):
                    os.remove(journal)
            result.data[label] = out
            if "error" in out:
                result.rows.append(
                    Row("6", f"peak RSS, {n:,} items, {label}", "n/a", met=False,
                        target=f"< {TARGET_MB:g} MB", note=out["error"])
                )  # fmt: skip
                continue
            done = sum(out["counts"].values())
            ok = out["counts"].get("succeeded", 0) == n
            full = n == FULL_ITEMS
            note = (
                f"{done:,} items in {out['wall']:.1f} s ({2 * done / out['wall']:,.0f} req/s); "
                f"peak {out['rss_before_mb']:.1f} MB before the run (imports, client, token)"
            )
            if "journal_mb" in out:
                note += f"; journal {out['journal_mb']:.1f} MB"
            if not ok:
                note += f"; results {out['counts']}"
            if not full:
                note += f" (quick run: the target is for {FULL_ITEMS:,} items)"
            result.rows.append(
                Row(
                    "6",
                    f"peak RSS (VmHWM), {n:,} items streamed, concurrency {CONCURRENCY}, {label}",
                    f"{out['peak_rss_mb']:.1f} MB",
                    target=f"< {TARGET_MB:g} MB for {FULL_ITEMS:,} items",
                    met=(out["peak_rss_mb"] < TARGET_MB and ok) if full else None,
                    note=note,
                )
            )
    result.seconds = time.perf_counter() - started
    return result
