"""2. Bulk transfer throughput: the SDK's BulkRunner vs a bare aiohttp client.

Both sides talk to the same minimal loopback server (another process, the other core). The SDK
side is ``BulkRunner(client, concurrency=N)`` over generated items: each item is one account
inquiry, one transfer and the check status that confirms it (an accepted transfer is not a paid
one), three requests. The bare side is one ``aiohttp.ClientSession`` with N tasks, each posting
the SDK's own three requests' bytes and headers (captured once from the SDK and replayed), the
same number of requests. Rounds alternate which side goes first. Reported: requests per second
(wall) and client CPU per request (``process_time`` of this process; the server's CPU is not in
it), medians and spread, and SDK/bare ratios. At the targeted concurrencies the SDK also runs
with ``confirm_transfers=False`` (two requests per item), side by side: what confirmation costs
per item, in items per second and client CPU per item.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from decimal import Decimal
from typing import Any

import aiohttp

from doku_async import DokuClient
from doku_async.bulk import BulkRunner, PayoutItem, payout_item

from ._common import (
    CLIENT_ID,
    CLIENT_SECRET,
    CUSTOMER_NUMBER,
    Deadline,
    LoopFactory,
    Paired,
    Row,
    Sample,
    Settings,
    alternate,
    loop_factories,
    measured,
    ratio_text,
    rsa_key_pem,
)
from ._result import Result
from ._server import ServerProcess

NAME = "bulk"
TITLE = "Bulk transfer throughput: BulkRunner vs bare aiohttp"
CONCURRENCIES = (1, 16, 64, 256)
TARGET_CONCURRENCIES = (16, 64)
MIN_RATE_RATIO = 0.85
MAX_CPU_RATIO = 1.2
RUN_SECONDS = 20.0
REQUESTS_PER_ITEM = 3
"""Account inquiry, transfer, and the check status that confirms it."""

Captured = list[tuple[str, bytes, dict[str, str]]]


def make_items(n: int, prefix: str = "DRV") -> list[PayoutItem]:
    """``n`` valid payout items (validated once, outside any timed region)."""
    return [
        payout_item(
            reference=f"{prefix}-2024-10-{i:06d}",
            bank_code="014",
            account_number="8377388292",
            account_name="FHILEA HERMANUS",
            amount=Decimal("200000"),
            remark="October earnings",
        )
        for i in range(n)
    ]


def new_client(url: str, **kwargs: Any) -> DokuClient:
    private, _ = rsa_key_pem()
    return DokuClient(CLIENT_ID, CLIENT_SECRET, private, base_url=url, **kwargs)


async def capture_pair(client: DokuClient, item: PayoutItem) -> Captured:
    """Run one item through the SDK and record the inquiry's and transfer's URL, body and
    headers exactly as handed to the transport."""
    transport = client._transport
    original = transport.post
    seen: Captured = []

    async def recording(url: str, body: bytes, headers: Any, *, timeout: float) -> Any:
        seen.append((url, body, dict(headers)))
        return await original(url, body, headers, timeout=timeout)

    transport.post = recording  # type: ignore[method-assign]
    try:
        await BulkRunner(client, customer_number=CUSTOMER_NUMBER, concurrency=1).run([item])
    finally:
        del transport.post  # back to the class's method
    pair = [entry for entry in seen if "access-token" not in entry[0]]
    if len(pair) != REQUESTS_PER_ITEM:
        raise RuntimeError(
            f"expected an inquiry, a transfer and a check status, captured {len(pair)} requests"
        )
    return pair


async def sdk_run(
    client: DokuClient, items: list[PayoutItem], concurrency: int, seconds: float
) -> Sample:
    """One BulkRunner run over ``items`` (or as many as fit in ``seconds``)."""
    deadline = Deadline(seconds)
    runner = BulkRunner(client, customer_number=CUSTOMER_NUMBER, concurrency=concurrency)

    def bounded() -> Any:
        for item in items:
            if deadline.passed():
                return
            yield item

    done = errors = 0
    expected = "succeeded" if client.confirm_transfers else "accepted"
    with measured() as m:
        async with asyncio.timeout(seconds + 30):
            async for result in runner.results(bounded()):
                done += 1
                if result.status != expected:
                    errors += 1
    per_item = REQUESTS_PER_ITEM if client.confirm_transfers else REQUESTS_PER_ITEM - 1
    return Sample(per_item * done, m[0], m[1], errors=errors, capped=done < len(items))


async def confirmation_cost(
    server: ServerProcess, settings: Settings, concurrency: int, items: list[PayoutItem]
) -> Paired:
    """Items per item-second with confirmation on ("sdk") and off ("base"), alternating."""
    paired = Paired([], [])
    async with (
        new_client(server.url) as confirmed,
        new_client(server.url, confirm_transfers=False) as unconfirmed,
    ):
        for _, order in alternate(settings.rounds):
            for side in order:
                server.reset()
                client = confirmed if side == "sdk" else unconfirmed
                sample = await sdk_run(client, items, concurrency, RUN_SECONDS)
                per_item = REQUESTS_PER_ITEM if side == "sdk" else REQUESTS_PER_ITEM - 1
                as_items = Sample(
                    sample.ops // per_item, sample.wall, sample.cpu, sample.errors, sample.capped
                )
                (paired.sdk if side == "sdk" else paired.base).append(as_items)
    return paired


async def bare_run(
    session: aiohttp.ClientSession,
    pair: Captured,
    n_items: int,
    concurrency: int,
    seconds: float,
) -> Sample:
    """N tasks posting the captured inquiry then transfer, ``n_items`` times in all."""
    deadline = Deadline(seconds)
    counter = itertools.count()
    stats = {"requests": 0, "errors": 0, "items": 0}

    async def worker() -> None:
        while next(counter) < n_items and not deadline.passed():
            for url, body, headers in pair:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        stats["errors"] += 1
                stats["requests"] += 1
            stats["items"] += 1

    with measured() as m:
        async with asyncio.timeout(seconds + 30):
            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Sample(
        stats["requests"], m[0], m[1], errors=stats["errors"], capped=stats["items"] < n_items
    )


async def _one_level(
    server: ServerProcess, settings: Settings, concurrency: int, items: list[PayoutItem]
) -> tuple[Paired, dict[str, Any]]:
    n_items = len(items)
    server_side: dict[str, list[float]] = {"sdk": [], "base": []}
    async with new_client(server.url) as client, aiohttp.ClientSession() as session:
        pair = await capture_pair(client, items[0])
        warm = items[: max(concurrency * 2, 100)]
        await sdk_run(client, warm, concurrency, RUN_SECONDS)
        await bare_run(session, pair, len(warm), concurrency, RUN_SECONDS)
        paired = Paired([], [])
        for _, order in alternate(settings.rounds):
            for side in order:
                server.reset()
                if side == "sdk":
                    sample = await sdk_run(client, items, concurrency, RUN_SECONDS)
                    paired.sdk.append(sample)
                else:
                    sample = await bare_run(session, pair, n_items, concurrency, RUN_SECONDS)
                    paired.base.append(sample)
                stats = server.stats()
                if stats["requests"] != sample.ops:
                    sample.errors += abs(stats["requests"] - sample.ops)
                server_side[side].append(stats["cpu"] / max(stats["requests"], 1) * 1e6)
    extra = {
        "server_cpu_us_per_request": server_side,
        "request_bytes": {url.rsplit("/", 1)[-1]: len(body) for url, body, _ in pair},
        "items_per_round": n_items,
    }
    return paired, extra


def _run_loop(
    loop_name: str,
    factory: LoopFactory,
    server: ServerProcess,
    settings: Settings,
    confirmation: dict[int, Paired],
) -> dict[int, tuple[Paired, dict[str, Any]]]:
    out: dict[int, tuple[Paired, dict[str, Any]]] = {}

    async def main() -> None:
        for concurrency in CONCURRENCIES:
            n = settings.scale(1000, 100) if concurrency == 1 else settings.scale(2000, 300)
            paired, extra = await _one_level(server, settings, concurrency, make_items(n))
            if concurrency in TARGET_CONCURRENCIES:
                cost = await confirmation_cost(server, settings, concurrency, make_items(n))
                extra["confirmation"] = cost.to_json()
                confirmation[concurrency] = cost
            out[concurrency] = (paired, extra)

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    return out


def run(settings: Settings) -> Result:
    result = Result(NAME, TITLE)
    started = time.perf_counter()
    with ServerProcess("minimal") as server:
        result.data["server"] = server.info
        for loop_name, factory in loop_factories():
            confirmation: dict[int, Paired] = {}
            levels = _run_loop(loop_name, factory, server, settings, confirmation)
            for concurrency, (paired, extra) in levels.items():
                key = f"{loop_name}/c{concurrency}"
                result.data[key] = paired.to_json() | extra
                result.rows.extend(_rows(loop_name, concurrency, paired))
                if concurrency in confirmation:
                    result.rows.extend(
                        _confirmation_rows(loop_name, concurrency, confirmation[concurrency])
                    )
    if len(loop_factories()) == 1:
        result.notes.append("uvloop is not installed: only the default asyncio loop was run.")
    result.seconds = time.perf_counter() - started
    return result


def _rows(loop_name: str, concurrency: int, paired: Paired) -> list[Row]:
    targeted = concurrency in TARGET_CONCURRENCIES
    rate_ratio, rate_spread = paired.ratio("rate")
    cpu_ratio, cpu_spread = paired.ratio("cpu_us")
    note = ""
    if paired.errors():
        note = f"{paired.errors()} errors/mismatches"
    if paired.capped():
        note = (note + "; " if note else "") + "a run hit its time bound"
    label = f"{loop_name}, concurrency {concurrency}"
    return [
        Row(
            "2",
            f"bulk req/s, {label}",
            paired.stat("sdk", "rate").fmt(),
            paired.stat("base", "rate").fmt(),
            ratio_text(rate_ratio, rate_spread),
            f"≥ {MIN_RATE_RATIO}x bare" if targeted else "—",
            (rate_ratio >= MIN_RATE_RATIO and not paired.errors()) if targeted else None,
            note,
        ),
        Row(
            "2",
            f"bulk client CPU µs/req, {label}",
            paired.stat("sdk", "cpu_us").fmt(1),
            paired.stat("base", "cpu_us").fmt(1),
            ratio_text(cpu_ratio, cpu_spread),
            f"≤ {MAX_CPU_RATIO}x bare" if targeted else "—",
            (cpu_ratio <= MAX_CPU_RATIO) if targeted else None,
        ),
    ]


def _confirmation_rows(loop_name: str, concurrency: int, paired: Paired) -> list[Row]:
    """What confirming each accepted transfer costs: items/s and client CPU per item, with
    confirmation ("SDK" column) and without ("baseline" column)."""
    rate_ratio, rate_spread = paired.ratio("rate")
    cpu_ratio, cpu_spread = paired.ratio("cpu_us")
    label = f"{loop_name}, concurrency {concurrency}"
    note = f"{paired.errors()} errors" if paired.errors() else ""
    return [
        Row(
            "2",
            f"bulk items/s, confirmed vs confirm_transfers=False, {label}",
            paired.stat("sdk", "rate").fmt(),
            paired.stat("base", "rate").fmt(),
            ratio_text(rate_ratio, rate_spread),
            "— (3 requests per item vs 2)",
            None,
            note,
        ),
        Row(
            "2",
            f"bulk client CPU µs/item, confirmed vs unconfirmed, {label}",
            paired.stat("sdk", "cpu_us").fmt(1),
            paired.stat("base", "cpu_us").fmt(1),
            ratio_text(cpu_ratio, cpu_spread),
            "—",
            None,
        ),
    ]


def main() -> None:
    """One side alone, for a profiler: ``python -m benchmarks.bulk --side sdk``."""
    import argparse

    from ._common import CLIENT_CPU, pin

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--side", choices=("sdk", "bare"), default="sdk")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--loop", choices=[name for name, _ in loop_factories()], default="asyncio")
    args = parser.parse_args()
    pin(CLIENT_CPU)
    factory = dict(loop_factories())[args.loop]
    items = make_items(args.items)

    async def go(url: str) -> Sample:
        async with new_client(url) as client, aiohttp.ClientSession() as session:
            pair = await capture_pair(client, items[0])
            if args.side == "sdk":
                return await sdk_run(client, items, args.concurrency, RUN_SECONDS * 3)
            return await bare_run(session, pair, len(items), args.concurrency, RUN_SECONDS * 3)

    with ServerProcess("minimal") as server, asyncio.Runner(loop_factory=factory) as runner:
        sample = runner.run(go(server.url))
    print(f"{args.side}: {sample.rate:,.0f} req/s, {sample.cpu_us:.1f} µs CPU/req")


if __name__ == "__main__":
    main()
